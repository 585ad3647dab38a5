package rules

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
)

var peerTaken = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// peered is a fixed-kernel node with vxlan0's tx checksum offload as given,
// and one peer measurement of vxlan0 made at mtu, age ago, at the rates on
// and off (bits per second).
func peered(offloadOn bool, mtu int, age time.Duration, on, off float64) *detect.Snapshot {
	s := offload(node("6.1.0"), offloadOn)
	s.Taken = peerTaken
	s.Peers = detect.Peers{Measurements: []detect.PeerMeasurement{{
		Peer: "node-b", Address: "10.0.0.2", Device: "vxlan0", MTU: mtu, At: peerTaken.Add(-age),
		Cases: []detect.PeerCase{
			{Name: detect.PeerCaseOffloadOn, Direction: detect.PeerSend, BitsPerSecond: on},
			{Name: detect.PeerCaseOffloadOff, Direction: detect.PeerSend, BitsPerSecond: off},
		},
	}}}
	return s
}

func TestPeerMeasurementRules(t *testing.T) {
	tests := []struct {
		name string
		snap *detect.Snapshot
		want []string
		// has is a substring of the summary of the first finding.
		has string
	}{
		{
			name: "offload off, measured helping: the measured loss on this pair, auto",
			snap: peered(false, 1450, time.Hour, 8e9, 2e9),
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=true"},
			has:  "measured between this node and node-b: the tunnel loses 75% of its throughput (8.0 Gbit/s on, 2.0 Gbit/s off)",
		},
		{
			name: "offload off, measured hurting: no fix to turn it on, offload-hurts says why",
			snap: peered(false, 1450, time.Hour, 2e8, 9e9),
			want: []string{"tunnel-offload-hurts vxlan0 info auto=false"},
			has:  "stays off: with tx checksum offload on, the tunnel from this node to node-b ran at 200 Mbit/s; with it off, at 9.0 Gbit/s",
		},
		{
			name: "offload on, measured hurting: a warning with the command to turn it off, not automatic",
			snap: peered(true, 1450, time.Hour, 2e8, 9e9),
			want: []string{"tunnel-offload-hurts vxlan0 warning auto=false"},
			has:  "is on for vxlan vxlan0 and measured slower than off",
		},
		{
			name: "stale: the estimate, as before",
			snap: peered(false, 1450, detect.PeerMaxAge+time.Minute, 2e8, 9e9),
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=true"},
			has:  "estimated",
		},
		{
			name: "another MTU: the estimate, as before",
			snap: peered(false, 1500, time.Hour, 2e8, 9e9),
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=true"},
			has:  "estimated",
		},
		{
			name: "within the noise: measured, no loss",
			snap: peered(false, 1450, time.Hour, 9.5e9, 1e10),
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=true"},
			has:  "measured between this node and node-b: no loss with offload off",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Evaluate(tt.snap, DefaultConfig())
			if diff := cmp.Diff(tt.want, fired(res)); diff != "" {
				t.Fatalf("findings (-want +got):\n%s", diff)
			}
			f := res.Findings[0]
			if !strings.Contains(f.Summary, tt.has) {
				t.Errorf("summary = %q; want it to contain %q", f.Summary, tt.has)
			}
			if f.Rule == TunnelOffloadHurts {
				for _, c := range f.Fix.Changes {
					if c.Value == "on" {
						t.Errorf("offload-hurts carries a change that turns offload on: %+v", c)
					}
				}
				if strings.Contains(f.Fix.Command, " on") {
					t.Errorf("offload-hurts fix command turns offload on: %q", f.Fix.Command)
				}
				if !strings.Contains(f.Impact.Source, "node-b") {
					t.Errorf("impact source %q does not name the peer", f.Impact.Source)
				}
			}
		})
	}
}

// TestPeerLossQuoted: the measured loss on this pair replaces both the
// published estimate and a local bench's figure, and names its source.
func TestPeerLossQuoted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MeasuredLoss = 0.4 // a veth bench on this node
	f := Evaluate(peered(false, 1450, time.Hour, 8e9, 2e9), cfg).Findings[0]
	if f.Impact.ThroughputLossRatio != 0.75 {
		t.Errorf("loss = %v; want the peer measurement's 0.75", f.Impact.ThroughputLossRatio)
	}
	if !strings.Contains(f.Impact.Source, "node-b") || strings.Contains(f.Impact.Source, "issue 9645") {
		t.Errorf("source = %q; want the peer measurement, not the published range", f.Impact.Source)
	}
	var peer string
	for _, e := range f.Evidence {
		if e.Name == "peer" {
			peer = e.Value
		}
	}
	if peer != "node-b" {
		t.Errorf("evidence %v lacks peer=node-b", f.Evidence)
	}
}

// TestPeerFileUnreadable: when the saved peer measurements could not be
// read, one of them may have found offload slower on this very device, so
// tunnel-tx-checksum-off is still raised but not automatic, and says why
// and what would settle it.
func TestPeerFileUnreadable(t *testing.T) {
	s := offload(node("6.1.0"), false)
	s.Taken = peerTaken
	s.Peers = detect.Peers{Err: detect.Fail(errors.New("peer measurements: 40 entries, more than 32"))}
	res := Evaluate(s, DefaultConfig())
	if diff := cmp.Diff([]string{"tunnel-tx-checksum-off vxlan0 warning auto=false"}, fired(res)); diff != "" {
		t.Fatalf("findings (-want +got):\n%s", diff)
	}
	f := res.Findings[0]
	if !strings.Contains(f.Fix.Manual, "40 entries") || !strings.Contains(f.Fix.Manual, "nodetune bench --peer") {
		t.Errorf("manual = %q; want the reason and what would settle it", f.Fix.Manual)
	}
}
