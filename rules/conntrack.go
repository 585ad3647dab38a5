package rules

import (
	"fmt"

	"github.com/nodetune/nodetune/detect"
)

// conntrackEntryBytes is roughly what one conntrack entry costs in kernel
// memory, used to bound how far nodetune raises the table.
const conntrackEntryBytes = 320

// ConntrackMaxCap is the largest nf_conntrack_max nodetune will set on a
// node with mem bytes of memory: enough entries to fill 1/32 of it.
func ConntrackMaxCap(mem uint64) int64 {
	return int64(mem / 32 / conntrackEntryBytes)
}

func evalConntrackFull(s *detect.Snapshot, c Config, r *Result) {
	ct := s.Conntrack
	if ct.Err.Failed() {
		r.unchecked(ConntrackNearFull, "conntrack", ct.Err)
		return
	}
	if !ct.Present {
		return
	}
	usage := ct.Usage()
	if usage < c.ConntrackWarn {
		return
	}
	sev := Warning
	if usage >= c.ConntrackCritical {
		sev = Critical
	}
	f := Finding{
		Rule:     ConntrackNearFull,
		Severity: sev,
		Subject:  "conntrack",
		Summary:  fmt.Sprintf("the conntrack table is %s full (%d of %d entries)", pct(usage), ct.Count, ct.Max),
		Explanation: "Every NATed or filtered flow, Service traffic included, needs a conntrack entry. When the table is " +
			"full the kernel drops the first packet of each new flow (\"nf_conntrack: table full, dropping packet\"), so " +
			"new connections time out while existing ones work.",
		Evidence: []Evidence{
			{"count", fmt.Sprint(ct.Count)}, {"max", fmt.Sprint(ct.Max)}, {"usage", pct(usage)},
			{"early_drop_delta", fmt.Sprint(ct.Delta.EarlyDrop)}, {"drop_delta", fmt.Sprint(ct.Delta.Drop)},
		},
		Impact:     Impact{Summary: "new connections are dropped once the table is full"},
		Owner:      detect.ConntrackMaxOwner(s),
		References: []string{"https://www.kernel.org/doc/html/latest/networking/nf_conntrack-sysctl.html"},
	}
	if s.Memory.Err.Failed() {
		f.Fix.Command = "sysctl -w net.netfilter.nf_conntrack_max=N"
		f.Fix.Manual = "memory size unreadable, so nodetune cannot bound the new size: " + s.Memory.Err.Error()
	} else {
		sysctlStep(&f, "net.netfilter.nf_conntrack_max", ct.Max, ConntrackMaxCap(s.Memory.TotalBytes))
	}
	if f.Owner != nil {
		f.Fix.Manual = f.Owner.Why + "; make it durable there: " + f.Owner.DurableFix
	}
	r.add(f)
}

func evalInsertFailed(s *detect.Snapshot, c Config, r *Result) {
	ct := s.Conntrack
	if ct.StatErr.Failed() {
		r.unchecked(ConntrackInsertFailed, "conntrack", ct.StatErr)
		return
	}
	if ct.Delta.InsertFailed == 0 {
		return
	}
	r.add(Finding{
		Rule:     ConntrackInsertFailed,
		Severity: Warning,
		Subject:  "conntrack",
		Summary:  fmt.Sprintf("%d conntrack inserts failed in %s: the race behind 5-second DNS timeouts", ct.Delta.InsertFailed, s.Window),
		Explanation: "glibc sends the A and AAAA queries at the same moment from one socket. Both packets race to create the " +
			"same conntrack entry after DNAT to a DNS pod; the loser is dropped, and the resolver waits its 5-second timeout " +
			"before it retries.",
		Evidence: []Evidence{
			{"insert_failed_delta", fmt.Sprint(ct.Delta.InsertFailed)}, {"insert_failed_total", fmt.Sprint(ct.Totals.InsertFailed)},
			{"drop_delta", fmt.Sprint(ct.Delta.Drop)},
		},
		Impact: Impact{Summary: "DNS lookups that take 5 s (or 10 s) instead of milliseconds"},
		Fix: Fix{
			Command: "dnsConfig: {options: [{name: single-request-reopen}]}",
			Manual:  "add the option to the pods' dnsConfig (or use-vc), or deploy NodeLocal DNSCache so DNS leaves the node over TCP without DNAT",
		},
		References: []string{
			"https://github.com/kubernetes/kubernetes/issues/56903",
			"https://kubernetes.io/docs/tasks/administer-cluster/nodelocaldns/",
		},
	})
}
