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
		evalConntrackOverflow(s, r)
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
		owner := f.Owner.Why + "; make it durable there: " + f.Owner.DurableFix
		if f.Fix.Manual != "" {
			owner = f.Fix.Manual + "; " + owner // why nothing is automatic comes first
		}
		f.Fix.Manual = owner
	}
	r.add(f)
}

// evalConntrackOverflow reports a table that filled up between samples:
// below the warning level now, but early_drop (counted only when the table
// is full and the kernel evicts an unconfirmed entry to make room) or drop
// rose during the window. drop also counts inserts that lost a clash, so a
// drop that insert_failed accounts for is no evidence of overflow.
func evalConntrackOverflow(s *detect.Snapshot, r *Result) {
	ct := s.Conntrack
	if ct.StatErr.Failed() {
		return // evalInsertFailed reports the stats as unchecked
	}
	d := ct.Delta
	drops := d.Drop - min(d.Drop, d.InsertFailed)
	if d.EarlyDrop == 0 && drops == 0 {
		return
	}
	f := Finding{
		Rule:     ConntrackNearFull,
		Severity: Warning,
		Subject:  "conntrack",
		Summary: fmt.Sprintf("the conntrack table overflowed during the %s window (%d early drops, %d drops) though it now holds %s of %d entries",
			s.Window, d.EarlyDrop, d.Drop, pct(ct.Usage()), ct.Max),
		Explanation: "Between two samples the table filled up and emptied again: bursts of short flows (DNS, health checks, " +
			"NodePort scans) fill it faster than entries expire. While full, the kernel evicts unconfirmed entries (early_drop) " +
			"and, when it cannot, drops the first packet of new flows, so new connections time out.",
		Evidence: []Evidence{
			{"count", fmt.Sprint(ct.Count)}, {"max", fmt.Sprint(ct.Max)}, {"usage", pct(ct.Usage())},
			{"early_drop_delta", fmt.Sprint(d.EarlyDrop)}, {"drop_delta", fmt.Sprint(d.Drop)}, {"insert_failed_delta", fmt.Sprint(d.InsertFailed)},
		},
		Impact:     Impact{Summary: "new connections dropped during bursts"},
		Owner:      detect.ConntrackMaxOwner(s),
		References: []string{"https://www.kernel.org/doc/html/latest/networking/nf_conntrack-sysctl.html"},
	}
	switch {
	case d.EarlyDrop == 0:
		// Only drop rose: a full table is the likely cause, not the only one.
		f.Fix.Command = "dmesg | grep 'nf_conntrack: table full'"
		f.Fix.Manual = "drop rose without early_drop, which a full table does not prove (a failed allocation drops too); " +
			"what would settle it: \"nf_conntrack: table full, dropping packet\" in the kernel log, or early_drop rising"
	case s.Memory.Err.Failed():
		f.Fix.Command = "sysctl -w net.netfilter.nf_conntrack_max=N"
		f.Fix.Manual = "memory size unreadable, so nodetune cannot bound the new size: " + s.Memory.Err.Error()
	default:
		sysctlStep(&f, "net.netfilter.nf_conntrack_max", ct.Max, ConntrackMaxCap(s.Memory.TotalBytes))
	}
	if f.Owner != nil && f.Fix.Auto {
		f.Fix.Manual = f.Owner.Why + "; make it durable there: " + f.Owner.DurableFix
	}
	r.add(f)
}

// clashResolvedFrom is the first kernel that resolves the clash of two
// packets inserting the same entry after DNAT to different backends, the
// DNS A/AAAA race (commit 6a757c07e51f), and counts it as clash_resolve.
var clashResolvedFrom = detect.Version{Major: 5, Minor: 6}

func evalInsertFailed(s *detect.Snapshot, c Config, r *Result) {
	ct := s.Conntrack
	if ct.StatErr.Failed() {
		r.unchecked(ConntrackInsertFailed, "conntrack", ct.StatErr)
		return
	}
	if ct.Delta.InsertFailed == 0 {
		return
	}
	ev := []Evidence{
		{"insert_failed_delta", fmt.Sprint(ct.Delta.InsertFailed)}, {"insert_failed_total", fmt.Sprint(ct.Totals.InsertFailed)},
		{"drop_delta", fmt.Sprint(ct.Delta.Drop)},
	}
	if ct.ClashCounted {
		ev = append(ev, Evidence{"clash_resolve_delta", fmt.Sprint(ct.Delta.ClashResolve)})
	}
	if s.Kernel.Err.Failed() {
		ev = append(ev, Evidence{"kernel", "unknown"})
	} else {
		ev = append(ev, Evidence{"kernel", s.Kernel.Release})
	}
	resolves := ct.ClashCounted || !s.Kernel.Err.Failed() && !s.Kernel.Version.Less(clashResolvedFrom)
	if resolves {
		r.add(Finding{
			Rule:     ConntrackInsertFailed,
			Severity: Warning,
			Subject:  "conntrack",
			Summary:  fmt.Sprintf("%d conntrack inserts failed in %s: clashes the kernel could not resolve", ct.Delta.InsertFailed, s.Window),
			Explanation: "This kernel resolves the clash of two packets creating the same entry at once (the DNS A/AAAA race) " +
				"and counts it as clash_resolve, so failed inserts here are other clashes: most often SNAT running out of source " +
				"ports when many connections leave through one address to one destination, which drops the new connection's " +
				"first packet.",
			Evidence: ev,
			Impact:   Impact{Summary: "new connections whose first packet is dropped, retried after a timeout"},
			Fix: Fix{
				Command: "conntrack -S",
				Manual: "find the destinations the failures go to (conntrack -S per CPU, the masquerading rules); spread SNAT over " +
					"more addresses or ports (masquerade random-fully), or let pods reach busy destinations without SNAT",
			},
			References: []string{
				"https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=6a757c07e51f",
				"https://github.com/kubernetes/kubernetes/issues/56903",
			},
		})
		return
	}
	explanation := "glibc sends the A and AAAA queries at the same moment from one socket. Both packets race to create the " +
		"same conntrack entry after DNAT to a DNS pod; the loser is dropped, and the resolver waits its 5-second timeout " +
		"before it retries. Linux 5.6 resolves this clash in the kernel; this one is older."
	if s.Kernel.Err.Failed() || s.Kernel.Version.Distribution() {
		explanation += " A distribution kernel may carry that change; what would settle it: a clashres column in /proc/net/stat/nf_conntrack."
	}
	r.add(Finding{
		Rule:        ConntrackInsertFailed,
		Severity:    Warning,
		Subject:     "conntrack",
		Summary:     fmt.Sprintf("%d conntrack inserts failed in %s: the race behind 5-second DNS timeouts", ct.Delta.InsertFailed, s.Window),
		Explanation: explanation,
		Evidence:    ev,
		Impact:      Impact{Summary: "DNS lookups that take 5 s (or 10 s) instead of milliseconds"},
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
