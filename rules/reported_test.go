package rules

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
)

var (
	// self is this node's underlay address in reportedNode.
	self = netip.MustParseAddr("10.0.0.1")
	// taken is when reportedNode's snapshot was taken.
	taken = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
)

// reportedNode is a healthy node on a kernel with the NAT fix, whose
// vxlan0 (port 4789, offload on) sends from eth0's 10.0.0.1, with the
// reports rs that other nodes recorded about it.
func reportedNode(rs ...detect.ChecksumReport) *detect.Snapshot {
	s := node("6.1.0")
	s.Taken = taken
	s.Tunnels.Devices[0].Underlay.Addrs = []netip.Addr{self}
	s.UDP.Reported = &detect.ChecksumReports{Node: "node-a", Reports: rs}
	return s
}

// report is node-b's report of 12 bad packets from src to port, the
// latest of them age before the snapshot.
func report(src netip.Addr, port uint16, age time.Duration) detect.ChecksumReport {
	return detect.ChecksumReport{Receiver: "node-b", Source: src, DstPort: port, Count: 12,
		First: taken.Add(-age - time.Minute), Last: taken.Add(-age)}
}

// TestReportedChecksumErrors: a recent report from another node that
// packets from this node's tunnel address to this tunnel's port arrived
// corrupt is evidence about this node's own tunnel, so
// tunnel-tx-checksum-unsafe fires on it, critical and automatic, even on a
// kernel with the NAT fix. A report to a port that is none of this node's
// tunnels, from an address the tunnel does not send from, or too old,
// makes no verdict.
func TestReportedChecksumErrors(t *testing.T) {
	other := netip.MustParseAddr("10.0.0.9")
	for _, tt := range []struct {
		name string
		s    *detect.Snapshot
		want []string
	}{
		{"recent, own address and port", reportedNode(report(self, 4789, 30*time.Second)),
			[]string{"tunnel-tx-checksum-unsafe vxlan0 critical auto=true"}},
		{"IPv4-mapped source", reportedNode(report(netip.AddrFrom16(self.As16()), 4789, 0)),
			[]string{"tunnel-tx-checksum-unsafe vxlan0 critical auto=true"}},
		{"wrong port", reportedNode(report(self, 8472, 30*time.Second)), nil},
		{"wrong address", reportedNode(report(other, 4789, 30*time.Second)), nil},
		{"stale", reportedNode(report(self, 4789, detect.ReportFreshness+time.Second)), nil},
		{"from the future beyond clock skew", reportedNode(report(self, 4789, -10*time.Minute)), nil},
		{"bound to another local address", func() *detect.Snapshot {
			s := reportedNode(report(self, 4789, 0))
			s.Tunnels.Devices[0].Local = other
			return s
		}(), nil},
		{"bound to the reported address", func() *detect.Snapshot {
			s := reportedNode(report(other, 4789, 0))
			s.Tunnels.Devices[0].Local = other
			return s
		}(), []string{"tunnel-tx-checksum-unsafe vxlan0 critical auto=true"}},
		{"offload already off", offload(reportedNode(report(self, 4789, 0)), false), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := Evaluate(tt.s, DefaultConfig())
			var got []string
			for _, f := range fired(res) {
				if !strings.HasPrefix(f, TunnelTxChecksumOff) { // the off rule is checked below
					got = append(got, f)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReportedFindingSaysWhoAndWhat: the finding names the receiver, the
// source address and port, the count and the window, and its fix is the
// offload change on the reported device.
func TestReportedFindingSaysWhoAndWhat(t *testing.T) {
	res := Evaluate(reportedNode(report(self, 4789, 30*time.Second)), DefaultConfig())
	if len(res.Findings) != 1 {
		t.Fatalf("want one finding, got %v", fired(res))
	}
	f := res.Findings[0]
	for _, want := range []string{"node-b", "10.0.0.1", ":4789", "12"} {
		if !strings.Contains(f.Summary+f.Explanation, want) {
			t.Errorf("the finding does not say %q: %s / %s", want, f.Summary, f.Explanation)
		}
	}
	want := []Change{featureChange("vxlan0", detect.FeatureTxChecksumGeneric, "off")}
	if diff := cmp.Diff(want, f.Fix.Changes); diff != "" {
		t.Errorf("fix (-want +got):\n%s", diff)
	}
	if !hasEvidence(f, "reported_by", "node-b") {
		t.Errorf("evidence does not name the receiver: %+v", f.Evidence)
	}
}

func hasEvidence(f Finding, key, contains string) bool {
	for _, e := range f.Evidence {
		if e.Name == key && strings.Contains(e.Value, contains) {
			return true
		}
	}
	return false
}

// TestReportsCouldNotBeChecked: unknown is not false. Where the Events
// could not be read, or the tunnel's source addresses could not be while a
// report names its port, the rule says it could not check; it neither
// fires nor stays silent.
func TestReportsCouldNotBeChecked(t *testing.T) {
	s := reportedNode()
	s.UDP.Reported.Err = detect.Fail(errors.New("listing events: forbidden"))
	res := Evaluate(s, DefaultConfig())
	if len(res.Findings) != 0 || !strings.Contains(strings.Join(uncheckedRules(res), ","), TunnelTxChecksumUnsafe) {
		t.Errorf("unreadable events: findings %v, unchecked %+v", fired(res), res.Unchecked)
	}

	s = reportedNode(report(self, 4789, 0))
	s.Tunnels.Devices[0].Underlay.Addrs = nil
	res = Evaluate(s, DefaultConfig())
	if len(res.Findings) != 0 || !strings.Contains(strings.Join(uncheckedRules(res), ","), TunnelTxChecksumUnsafe) {
		t.Errorf("unknown source addresses: findings %v, unchecked %+v", fired(res), res.Unchecked)
	}

	// Outside a cluster there is nothing to read and nothing to say.
	s = reportedNode()
	s.UDP.Reported = nil
	if res := Evaluate(s, DefaultConfig()); len(res.Findings) != 0 || len(res.Unchecked) != 0 {
		t.Errorf("outside a cluster: findings %v, unchecked %+v", fired(res), res.Unchecked)
	}
}

// TestReportsKeepOffloadOff: once this node turned offload off because
// its packets were reported corrupt, tunnel-tx-checksum-off does not turn
// it back on automatically while any report about the tunnel is still
// held, fresh or not: that would undo the fix and corrupt packets again.
func TestReportsKeepOffloadOff(t *testing.T) {
	for _, age := range []time.Duration{0, 40 * time.Minute} {
		res := Evaluate(offload(reportedNode(report(self, 4789, age)), false), DefaultConfig())
		got := fired(res)
		if diff := cmp.Diff([]string{"tunnel-tx-checksum-off vxlan0 warning auto=false"}, got); diff != "" {
			t.Errorf("report %s old (-want +got):\n%s", age, diff)
		}
		if len(res.Findings) == 1 && !strings.Contains(res.Findings[0].Fix.Manual, "node-b") {
			t.Errorf("the hold does not say who reported: %s", res.Findings[0].Fix.Manual)
		}
	}
	// Reports that could not be read hold it too: no evidence is not
	// evidence of none.
	s := offload(reportedNode(), false)
	s.UDP.Reported.Err = detect.Fail(errors.New("listing events: forbidden"))
	if diff := cmp.Diff([]string{"tunnel-tx-checksum-off vxlan0 warning auto=false"}, fired(Evaluate(s, DefaultConfig()))); diff != "" {
		t.Errorf("unreadable reports (-want +got):\n%s", diff)
	}
	// A report about another port does not hold it.
	res := Evaluate(offload(reportedNode(report(self, 8472, 0)), false), DefaultConfig())
	if diff := cmp.Diff([]string{"tunnel-tx-checksum-off vxlan0 warning auto=true"}, fired(res)); diff != "" {
		t.Errorf("report about another port (-want +got):\n%s", diff)
	}
}
