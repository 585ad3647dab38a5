package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMeasuredSlowerFinding(t *testing.T) {
	f := MeasuredSlowerFinding(MeasuredSlower{
		Rule: TunnelTxChecksumOff, Subject: "vxlan0",
		Change: Change{Kind: ChangeFeature, Target: "vxlan0", Setting: "tx-checksum-ip-generic", Value: "on"},
		Peer:   "node-b", Path: "tunnel send", Before: 5e9, After: 1e8, Margin: 0.7,
		At: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
	})
	want := "`ethtool -K vxlan0 tx-checksum-ip-generic on` (for tunnel-tx-checksum-off) measured slower on the tunnel send path to node-b: " +
		"5.0 Gbit/s before, 100 Mbit/s after; nodetune undid it and does not make it again"
	if diff := cmp.Diff(want, f.Summary); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	ev := map[string]string{}
	for _, e := range f.Evidence {
		ev[e.Name] = e.Value
	}
	if ev["before_bps"] != "5000000000" || ev["after_bps"] != "100000000" || ev["peer"] != "node-b" || ev["noise_margin"] != "70%" {
		t.Errorf("evidence: %v", ev)
	}
	if f.Rule != RemediationMeasuredSlower || f.Subject != "vxlan0" || f.Fix.Auto || f.Fix.Command != "nodetune fix --release tunnel-tx-checksum-off" ||
		!strings.Contains(f.Impact.Summary, "98%") {
		t.Errorf("finding: %+v", f)
	}
}
