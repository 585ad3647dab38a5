package bench

import (
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/procfs"
)

// cpuSample is one reading of the per-CPU time and softnet counters.
type cpuSample struct {
	at      time.Time
	cpu     map[int64]procfs.CPUStat
	softnet map[uint32]procfs.SoftnetStat
}

// sampler reads the counters a peer case is judged by, from a procfs root.
type sampler struct{ fs procfs.FS }

// newSampler reads procfs at root ("/proc" when empty).
func newSampler(root string) (sampler, error) {
	if root == "" {
		root = procfs.DefaultMountPoint
	}
	fs, err := procfs.NewFS(root)
	if err != nil {
		return sampler{}, fmt.Errorf("opening procfs at %s: %w", root, err)
	}
	return sampler{fs: fs}, nil
}

// sample reads /proc/stat and /proc/net/softnet_stat once.
func (s sampler) sample() (cpuSample, error) {
	out := cpuSample{at: time.Now(), softnet: map[uint32]procfs.SoftnetStat{}}
	st, err := s.fs.Stat()
	if err != nil {
		return out, fmt.Errorf("reading /proc/stat: %w", err)
	}
	if len(st.CPU) == 0 {
		return out, fmt.Errorf("reading /proc/stat: no per-CPU lines")
	}
	out.cpu = st.CPU
	sn, err := s.fs.NetSoftnetStat()
	if err != nil {
		return out, fmt.Errorf("reading /proc/net/softnet_stat: %w", err)
	}
	for i, row := range sn {
		idx := row.Index
		if row.Width < 13 { // before kernel 5.10 the row carries no CPU id
			idx = uint32(i)
		}
		out.softnet[idx] = row
	}
	return out, nil
}

// Usage is how one node's CPUs spent a measuring window.
type Usage struct {
	// Seconds is the window's length.
	Seconds float64 `json:"seconds"`
	// CPUs is each CPU's share of the window, by CPU number.
	CPUs []CPUShare `json:"cpus"`
	// Dropped and Squeezed are the softnet drops (netdev_max_backlog full)
	// and squeezes (netdev_budget run out) over the window, on all CPUs.
	Dropped  uint64 `json:"softnet_dropped"`
	Squeezed uint64 `json:"softnet_squeezed"`
}

// CPUShare is one CPU's use of a window, each a ratio in [0,1].
type CPUShare struct {
	CPU     int     `json:"cpu"`
	Softirq float64 `json:"softirq"`
	Steal   float64 `json:"steal"`
	// Busy is every non-idle state: user, system, irq, softirq, steal.
	Busy float64 `json:"busy"`
}

// usage is what happened between two samples.
func usage(a, b cpuSample) Usage {
	u := Usage{Seconds: b.at.Sub(a.at).Seconds()}
	ids := make([]int64, 0, len(b.cpu))
	for id := range b.cpu {
		if _, ok := a.cpu[id]; ok {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		x, y := a.cpu[id], b.cpu[id]
		d := func(f func(procfs.CPUStat) float64) float64 { return max(f(y)-f(x), 0) }
		idle := d(func(c procfs.CPUStat) float64 { return c.Idle + c.Iowait })
		sirq := d(func(c procfs.CPUStat) float64 { return c.SoftIRQ })
		steal := d(func(c procfs.CPUStat) float64 { return c.Steal })
		busy := d(func(c procfs.CPUStat) float64 { return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal })
		total := idle + busy
		if total <= 0 {
			continue
		}
		u.CPUs = append(u.CPUs, CPUShare{CPU: int(id), Softirq: sirq / total, Steal: steal / total, Busy: busy / total})
	}
	for idx, y := range b.softnet {
		x, ok := a.softnet[idx]
		if !ok {
			continue
		}
		u.Dropped += delta32(x.Dropped, y.Dropped)
		u.Squeezed += delta32(x.TimeSqueezed, y.TimeSqueezed)
	}
	return u
}

// delta32 is the increase of a 32-bit kernel counter, which may wrap.
func delta32(a, b uint32) uint64 { return uint64(b - a) }

// Thresholds above which a CPU limited a run.
const (
	softirqLimit = 0.9
	busyLimit    = 0.9
	stealLimit   = 0.1
)

// Bottleneck says what limited a run, from the sender's and the
// receiver's usage over its window (nil when that side could not be
// sampled): softnet drops first (packets were lost), then a CPU saturated
// by softirq, then steal, then a CPU saturated otherwise, then squeezes.
// It is empty when nothing stood out.
func Bottleneck(sender, receiver *Usage) string {
	sides := []struct {
		name string
		u    *Usage
	}{{"receiver", receiver}, {"sender", sender}}
	for _, s := range sides {
		if s.u != nil && s.u.Dropped > 0 {
			return fmt.Sprintf("%d softnet drops on the %s (netdev_max_backlog full)", s.u.Dropped, s.name)
		}
	}
	type pick struct {
		v    float64
		text string
	}
	best := func(f func(CPUShare) float64, min float64, say func(c CPUShare, side string) string) (pick, bool) {
		var p pick
		found := false
		for _, s := range sides {
			if s.u == nil {
				continue
			}
			for _, c := range s.u.CPUs {
				if v := f(c); v >= min && v > p.v {
					p, found = pick{v, say(c, s.name)}, true
				}
			}
		}
		return p, found
	}
	if p, ok := best(func(c CPUShare) float64 { return c.Softirq }, softirqLimit, func(c CPUShare, side string) string {
		return fmt.Sprintf("cpu%d at %s softirq on the %s", c.CPU, pct(c.Softirq), side)
	}); ok {
		return p.text
	}
	if p, ok := best(func(c CPUShare) float64 { return c.Steal }, stealLimit, func(c CPUShare, side string) string {
		return fmt.Sprintf("cpu%d at %s steal on the %s", c.CPU, pct(c.Steal), side)
	}); ok {
		return p.text
	}
	if p, ok := best(func(c CPUShare) float64 { return c.Busy }, busyLimit, func(c CPUShare, side string) string {
		return fmt.Sprintf("cpu%d at %s busy (%s softirq) on the %s", c.CPU, pct(c.Busy), pct(c.Softirq), side)
	}); ok {
		return p.text
	}
	for _, s := range sides {
		if s.u != nil && s.u.Squeezed > 0 {
			return fmt.Sprintf("%d softnet squeezes on the %s (netdev_budget ran out)", s.u.Squeezed, s.name)
		}
	}
	return ""
}

// pct prints a ratio as a whole percentage.
func pct(v float64) string { return fmt.Sprintf("%.0f%%", min(v, 1)*100) }
