package probes

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/prometheus/procfs"

	"github.com/nodetune/nodetune/detect"
)

// sample is one reading of the node's cumulative counters. Two samples
// give the rates of a snapshot.
type sample struct {
	at time.Time

	cpu      map[int64]procfs.CPUStat
	cpuErr   error
	softirqs procfs.Softirqs
	sirqErr  error
	softnet  []procfs.SoftnetStat
	snetErr  error
	ctStat   detect.ConntrackCounters
	ctClash  bool
	ctErr    error
	udpCsum  uint64
	udpErr   error
	udp6Csum uint64
	udp6Err  error
}

// err joins every error of the sample, for the probe's own record.
func (s *sample) err() detect.Err {
	udp6Err := s.udp6Err
	if errors.Is(udp6Err, detect.ErrNotSupported) {
		udp6Err = nil // a kernel without IPv6 has no snmp6
	}
	return detect.Fail(errors.Join(s.cpuErr, s.sirqErr, s.snetErr, s.ctErr, s.udpErr, udp6Err))
}

func errMissing(field string) error { return fmt.Errorf("%s: %w", field, detect.ErrNotSupported) }

// sample reads every cumulative counter once.
func (h *Host) sample(at time.Time) *sample {
	s := &sample{at: at}
	// procfs skips lines it does not know, so a garbled file can parse
	// to nothing; that is an error too, not an idle machine.
	if st, err := h.proc.Stat(); err != nil {
		s.cpuErr = classify("reading /proc/stat", err)
	} else if len(st.CPU) == 0 {
		s.cpuErr = fmt.Errorf("reading /proc/stat: no per-CPU lines")
	} else {
		s.cpu = st.CPU
	}
	if si, err := h.proc.Softirqs(); err != nil {
		s.sirqErr = classify("reading /proc/softirqs", err)
	} else if len(si.NetRx) == 0 {
		s.sirqErr = fmt.Errorf("reading /proc/softirqs: no NET_RX row")
	} else {
		s.softirqs = si
	}
	if sn, err := h.proc.NetSoftnetStat(); err != nil {
		s.snetErr = classify("reading /proc/net/softnet_stat", err)
	} else {
		s.softnet = sn
	}
	s.ctStat, s.ctClash, s.ctErr = h.conntrackStat()
	s.udpCsum, s.udpErr = h.udpChecksumErrors()
	s.udp6Csum, s.udp6Err = h.udp6ChecksumErrors()
	return s
}

// conntrackStat reads <procfs>/net/stat/nf_conntrack through
// ParseConntrackStat, which finds columns by name: their positions moved
// when clashres took the place of searched.
func (h *Host) conntrackStat() (detect.ConntrackCounters, bool, error) {
	f, err := os.Open(filepath.Join(h.ProcFS, "net/stat/nf_conntrack"))
	if err != nil {
		return detect.ConntrackCounters{}, false, classify("reading /proc/net/stat/nf_conntrack", err)
	}
	defer f.Close()
	c, clash, err := ParseConntrackStat(f)
	if err != nil {
		return c, false, fmt.Errorf("reading /proc/net/stat/nf_conntrack: %w", err)
	}
	return c, clash, nil
}

// udpChecksumErrors reads Udp InCsumErrors from <procfs>/self/net/snmp,
// the network namespace of the reading process.
func (h *Host) udpChecksumErrors() (uint64, error) {
	self, err := h.proc.Self()
	if err != nil {
		return 0, classify("reading /proc/net/snmp (through /proc/self)", err)
	}
	snmp, err := self.Snmp()
	if err != nil {
		return 0, classify("reading /proc/net/snmp", err)
	}
	// InCsumErrors appeared in the Udp line in Linux 3.10.
	if snmp.Udp.InCsumErrors == nil {
		return 0, classify("reading /proc/net/snmp", errMissing("Udp InCsumErrors"))
	}
	return uint64(*snmp.Udp.InCsumErrors), nil
}

// udp6ChecksumErrors reads Udp6InCsumErrors from <procfs>/self/net/snmp6.
// A kernel without IPv6 has no snmp6: that is ErrNotSupported.
func (h *Host) udp6ChecksumErrors() (uint64, error) {
	self, err := h.proc.Self()
	if err != nil {
		return 0, classify("reading /proc/net/snmp6 (through /proc/self)", err)
	}
	snmp6, err := self.Snmp6()
	if err != nil {
		return 0, classify("reading /proc/net/snmp6", err)
	}
	if snmp6.Udp6.InCsumErrors == nil {
		return 0, classify("reading /proc/net/snmp6", errMissing("Udp6InCsumErrors"))
	}
	return uint64(*snmp6.Udp6.InCsumErrors), nil
}

// sub returns cur-prev for a counter that must not go backwards; a counter
// that did (a namespace or module was recreated) contributes 0.
func sub(cur, prev uint64) uint64 {
	if cur < prev {
		return 0
	}
	return cur - prev
}

// applyRates fills the window-dependent parts of s from two samples. A
// counter that either sample could not read is reported with the first
// error, the current sample's if both failed.
func applyRates(s *detect.Snapshot, prev, cur *sample) {
	s.Window = cur.at.Sub(prev.at)
	applyCPU(s, prev, cur)
	applySoftnet(s, prev, cur)

	if err := cmp.Or(cur.ctErr, prev.ctErr); err != nil {
		s.Conntrack.StatErr = detect.Fail(err)
	} else {
		s.Conntrack.Totals = cur.ctStat
		s.Conntrack.ClashCounted = cur.ctClash
		s.Conntrack.Delta = detect.ConntrackCounters{
			InsertFailed: sub(cur.ctStat.InsertFailed, prev.ctStat.InsertFailed),
			Drop:         sub(cur.ctStat.Drop, prev.ctStat.Drop),
			EarlyDrop:    sub(cur.ctStat.EarlyDrop, prev.ctStat.EarlyDrop),
			ClashResolve: sub(cur.ctStat.ClashResolve, prev.ctStat.ClashResolve),
		}
	}

	if err := cmp.Or(cur.udpErr, prev.udpErr); err != nil {
		s.UDP.Err = detect.Fail(err)
	} else {
		s.UDP.InCsumErrors = cur.udpCsum
		s.UDP.Delta = sub(cur.udpCsum, prev.udpCsum)
	}
	if err := cmp.Or(cur.udp6Err, prev.udp6Err); err != nil {
		s.UDP.Err6 = detect.Fail(err)
	} else {
		s.UDP.InCsumErrors6 = cur.udp6Csum
		s.UDP.Delta6 = sub(cur.udp6Csum, prev.udp6Csum)
	}
}

// cpuTotal is all time a CPU accounted for. Guest time is already counted
// in user time, so it is left out.
func cpuTotal(c procfs.CPUStat) float64 {
	return c.User + c.Nice + c.System + c.Idle + c.Iowait + c.IRQ + c.SoftIRQ + c.Steal
}

func ratio(d, total float64) float64 {
	if total <= 0 || d <= 0 {
		return 0
	}
	return min(d/total, 1)
}

func applyCPU(s *detect.Snapshot, prev, cur *sample) {
	if err := cmp.Or(cur.cpuErr, prev.cpuErr); err != nil {
		s.CPU.Err = detect.Fail(err)
		return
	}
	if err := cmp.Or(cur.sirqErr, prev.sirqErr); err != nil {
		s.CPU.SoftirqErr = detect.Fail(err)
	}
	ids := make([]int64, 0, len(cur.cpu))
	for id := range cur.cpu {
		if _, ok := prev.cpu[id]; ok {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var sumTotal, sumSirq, sumSteal, sumIdle float64
	s.CPU.Total = detect.CPUUsage{CPU: -1}
	s.CPU.PerCPU = make([]detect.CPUUsage, 0, len(ids))
	for _, id := range ids {
		a, b := prev.cpu[id], cur.cpu[id]
		total := cpuTotal(b) - cpuTotal(a)
		sirq, steal, idle := b.SoftIRQ-a.SoftIRQ, b.Steal-a.Steal, (b.Idle+b.Iowait)-(a.Idle+a.Iowait)
		u := detect.CPUUsage{CPU: int(id), Softirq: ratio(sirq, total), Steal: ratio(steal, total), Idle: ratio(idle, total)}
		u.NetRx = counterDelta(cur.softirqs.NetRx, prev.softirqs.NetRx, int(id))
		u.NetTx = counterDelta(cur.softirqs.NetTx, prev.softirqs.NetTx, int(id))
		s.CPU.Total.NetRx += u.NetRx
		s.CPU.Total.NetTx += u.NetTx
		s.CPU.PerCPU = append(s.CPU.PerCPU, u)
		if total > 0 {
			sumTotal += total
			sumSirq += max(sirq, 0)
			sumSteal += max(steal, 0)
			sumIdle += max(idle, 0)
		}
	}
	s.CPU.Total.Softirq = ratio(sumSirq, sumTotal)
	s.CPU.Total.Steal = ratio(sumSteal, sumTotal)
	s.CPU.Total.Idle = ratio(sumIdle, sumTotal)
	// procfs gives CPU time in seconds, counted in ticks of 1/USER_HZ.
	if ticks := sumTotal * userHZ / float64(max(len(ids), 1)); ticks < minCPUTicks {
		s.CPU.Err = detect.Fail(fmt.Errorf("reading /proc/stat: %w: %.0f clock ticks per CPU (10 ms each) between the two readings, %d needed to tell a ratio",
			detect.ErrTooShort, ticks, minCPUTicks))
	}
}

// userHZ is the unit of /proc/stat (USER_HZ, 100 on every Linux
// architecture nodetune runs on); procfs divides by it.
const userHZ = 100

// minCPUTicks is the fewest clock ticks per CPU a window must hold for its
// CPU ratios to mean anything: with five, one tick more or less moves a
// ratio by 20%, and with none every ratio reads 0, an "idle 0.0%" that
// was never measured.
const minCPUTicks = 5

// counterDelta is cur[i]-prev[i], or 0 when either lacks CPU i.
func counterDelta(cur, prev []uint64, i int) uint64 {
	if i >= len(cur) || i >= len(prev) {
		return 0
	}
	return sub(cur[i], prev[i])
}

func applySoftnet(s *detect.Snapshot, prev, cur *sample) {
	if err := cmp.Or(cur.snetErr, prev.snetErr); err != nil {
		s.Softnet.Err = detect.Fail(err)
		return
	}
	before := make(map[uint32]procfs.SoftnetStat, len(prev.softnet))
	for _, st := range prev.softnet {
		before[st.Index] = st
	}
	for _, st := range cur.softnet {
		s.Softnet.Totals.Processed += uint64(st.Processed)
		s.Softnet.Totals.Dropped += uint64(st.Dropped)
		s.Softnet.Totals.TimeSqueezed += uint64(st.TimeSqueezed)
		s.Softnet.Totals.FlowLimit += uint64(st.FlowLimitCount)
		p, ok := before[st.Index]
		if !ok {
			continue
		}
		// The columns are 32-bit and wrap; unsigned subtraction handles one wrap.
		processed := uint64(st.Processed - p.Processed)
		s.Softnet.Delta.Processed += processed
		s.Softnet.Delta.Dropped += uint64(st.Dropped - p.Dropped)
		s.Softnet.Delta.TimeSqueezed += uint64(st.TimeSqueezed - p.TimeSqueezed)
		s.Softnet.Delta.FlowLimit += uint64(st.FlowLimitCount - p.FlowLimitCount)
		s.Softnet.PerCPUProcessed = append(s.Softnet.PerCPUProcessed, processed)
	}
}
