package rules

import (
	"fmt"
	"strings"

	"github.com/nodetune/nodetune/detect"
)

func pct(r float64) string { return fmt.Sprintf("%.1f%%", r*100) }

func evalSteal(s *detect.Snapshot, c Config, r *Result) {
	if s.CPU.Err.Failed() {
		r.unchecked(CPUStealHigh, "", s.CPU.Err)
		return
	}
	steal := s.CPU.Total.Steal
	if steal < c.StealWarn {
		return
	}
	sev := Warning
	if steal >= c.StealCritical {
		sev = Critical
	}
	worst := detect.CPUUsage{CPU: -1}
	for _, u := range s.CPU.PerCPU {
		if u.Steal > worst.Steal {
			worst = u
		}
	}
	r.add(Finding{
		Rule:     CPUStealHigh,
		Severity: sev,
		Subject:  "cpu",
		Summary:  fmt.Sprintf("the hypervisor took %s of this node's CPU time over %s", pct(steal), s.Window),
		Explanation: "Steal is time a vCPU was ready to run but the hypervisor ran something else. Packet processing " +
			"waits with everything else, so latency jitters and softirq work backs up; nothing on the node can tune it away.",
		Evidence: []Evidence{{"steal_ratio", pct(steal)}, {"worst_cpu", fmt.Sprint(worst.CPU)}, {"worst_cpu_steal_ratio", pct(worst.Steal)}},
		Impact:   Impact{Summary: fmt.Sprintf("%s of CPU capacity and latency spikes (seen at 500 ms in the field)", pct(steal))},
		Fix: Fix{
			Manual: "move the node to an instance type with dedicated vCPUs or a less contended host, or ask the provider; watch steal before and after",
		},
		References: []string{"https://www.kernel.org/doc/html/latest/filesystems/proc.html#miscellaneous-kernel-statistics-in-proc-stat"},
	})
}

// CPUMask returns the hex mask of the given CPU ids in the comma-grouped
// form that rps_cpus takes and prints, such as "f" or "ffffffff,ffffffff".
// The ids are those the kernel reports, which need not be 0..n-1 when
// some CPUs are offline.
func CPUMask(cpus []int) string {
	top := -1
	for _, c := range cpus {
		top = max(top, c)
	}
	if top < 0 {
		return "0"
	}
	words := make([]uint32, top/32+1)
	for _, c := range cpus {
		if c >= 0 {
			words[c/32] |= 1 << (c % 32)
		}
	}
	groups := make([]string, len(words))
	for i, w := range words {
		format := "%08x"
		if i == len(words)-1 {
			format = "%x"
		}
		groups[len(words)-1-i] = fmt.Sprintf(format, w)
	}
	return strings.Join(groups, ",")
}

// rpsOff reports whether a mask enables no CPU.
func rpsOff(mask string) bool { return strings.Trim(mask, "0,\n ") == "" }

func evalSoftirq(s *detect.Snapshot, c Config, r *Result) {
	if s.CPU.Err.Failed() {
		r.unchecked(SoftirqSaturated, "", s.CPU.Err)
		return
	}
	n := len(s.CPU.PerCPU)
	if n < 2 {
		return // nowhere to spread the work
	}
	busiest := s.CPU.PerCPU[0]
	for _, u := range s.CPU.PerCPU[1:] {
		if u.Softirq > busiest.Softirq {
			busiest = u
		}
	}
	if busiest.Softirq < c.SoftirqBusy {
		return
	}
	var othersIdle float64
	for _, u := range s.CPU.PerCPU {
		if u.CPU != busiest.CPU {
			othersIdle += u.Idle
		}
	}
	othersIdle /= float64(n - 1)
	if othersIdle < 0.5 {
		return // every CPU is busy: spreading will not help
	}
	subject := fmt.Sprintf("cpu%d", busiest.CPU)
	f := Finding{
		Rule:     SoftirqSaturated,
		Severity: Warning,
		Subject:  subject,
		Summary:  fmt.Sprintf("CPU %d spent %s of its time in softirq while the other CPUs were %s idle", busiest.CPU, pct(busiest.Softirq), pct(othersIdle)),
		Explanation: "All receive processing for a queue runs on the CPU its interrupt lands on. When the NIC has fewer queues " +
			"than CPUs, or RPS is not set, one CPU does the whole node's packet work and caps its throughput while the others idle.",
		Evidence: []Evidence{
			{"softirq_ratio", pct(busiest.Softirq)}, {"net_rx_softirqs", fmt.Sprint(busiest.NetRx)},
			{"others_idle_ratio", pct(othersIdle)}, {"cpus", fmt.Sprint(n)},
		},
		Impact: Impact{Summary: fmt.Sprintf("receive throughput capped at one CPU of %d", n)},
		References: []string{
			"https://www.kernel.org/doc/html/latest/networking/scaling.html",
		},
	}
	ids := make([]int, n)
	for i, u := range s.CPU.PerCPU {
		ids[i] = u.CPU
	}
	spreadFix(&f, s, busiest.CPU, ids)
	r.add(f)
}

// Softnet bounds: nodetune doubles a value per step and never passes these.
const (
	MaxBacklogCap = 65536
	BudgetCap     = 2400
)

// nextStep doubles cur, bounded by limit; ok is false when no step is left.
func nextStep(cur, limit int64) (int64, bool) {
	if cur <= 0 || cur >= limit {
		return 0, false
	}
	return min(cur*2, limit), true
}

func evalSoftnet(s *detect.Snapshot, c Config, r *Result) {
	if s.Softnet.Err.Failed() {
		r.unchecked(SoftnetDrops, "", s.Softnet.Err)
		return
	}
	d := s.Softnet.Delta
	refs := []string{"https://www.kernel.org/doc/html/latest/admin-guide/sysctl/net.html"}
	if d.Dropped > 0 {
		f := Finding{
			Rule:     SoftnetDrops,
			Severity: Warning,
			Subject:  "netdev_max_backlog",
			Summary:  fmt.Sprintf("%d packets were dropped in %s because a CPU's input backlog was full", d.Dropped, s.Window),
			Explanation: "Packets wait in a per-CPU backlog (net.core.netdev_max_backlog long) before the stack processes " +
				"them. When it overflows, the kernel drops them before any socket sees them, and TCP backs off.",
			Evidence:   []Evidence{{"dropped", fmt.Sprint(d.Dropped)}, {"processed", fmt.Sprint(d.Processed)}, {"netdev_max_backlog", fmt.Sprint(s.Softnet.MaxBacklog)}},
			Impact:     Impact{Summary: fmt.Sprintf("%d dropped of %d packets processed", d.Dropped, d.Processed)},
			References: refs,
		}
		sysctlStep(&f, "net.core.netdev_max_backlog", s.Softnet.MaxBacklog, MaxBacklogCap)
		r.add(f)
	}
	if d.TimeSqueezed > 0 {
		f := Finding{
			Rule:     SoftnetDrops,
			Severity: Info,
			Subject:  "netdev_budget",
			Summary:  fmt.Sprintf("the receive softirq ran out of budget %d times in %s", d.TimeSqueezed, s.Window),
			Explanation: "Each NET_RX softirq may process net.core.netdev_budget packets (and netdev_budget_usecs of time). " +
				"When it runs out with work left, the rest waits for the next round, adding latency under load.",
			Evidence:   []Evidence{{"time_squeezed", fmt.Sprint(d.TimeSqueezed)}, {"netdev_budget", fmt.Sprint(s.Softnet.Budget)}},
			Impact:     Impact{Summary: "added receive latency under load"},
			References: refs,
		}
		sysctlStep(&f, "net.core.netdev_budget", s.Softnet.Budget, BudgetCap)
		r.add(f)
	}
}

// sysctlStep fills f's fix with one bounded doubling of key.
func sysctlStep(f *Finding, key string, cur, limit int64) {
	next, ok := nextStep(cur, limit)
	if !ok {
		f.Fix.Command = fmt.Sprintf("sysctl %s", key)
		f.Fix.Manual = fmt.Sprintf("%s is %d, at or past nodetune's bound of %d (or unreadable); look for the cause of the load instead", key, cur, limit)
		return
	}
	ch := Change{Kind: ChangeSysctl, Target: key, Value: fmt.Sprint(next)}
	f.Fix = Fix{Command: ch.Command(), Auto: true, Changes: []Change{ch}}
}
