package exporter

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// peerMeasurements are two peers' last measurements: one complete with a
// bottleneck, one whose offload cases failed.
func peerMeasurements() detect.Peers {
	at := time.Unix(1767323045, 0).UTC()
	return detect.Peers{Measurements: []detect.PeerMeasurement{
		{Peer: "node-b", Address: "10.0.0.2", Device: "vxlan.calico", MTU: 1450, At: at, Cases: []detect.PeerCase{
			{Name: detect.PeerCaseHost, Direction: detect.PeerSend, BitsPerSecond: 9.4e9},
			{Name: detect.PeerCaseTunnel, Direction: detect.PeerSend, BitsPerSecond: 2.9e9, Bottleneck: "cpu1 at 100% softirq on the receiver"},
			{Name: detect.PeerCaseTunnel, Direction: detect.PeerSend, BitsPerSecond: 1}, // a duplicate: ignored
			{Name: detect.PeerCaseOffloadOn, Direction: detect.PeerSend, BitsPerSecond: 2e8},
			{Name: detect.PeerCaseOffloadOff, Direction: detect.PeerSend, BitsPerSecond: 9e9},
		}},
		{Peer: "node-c", Address: "10.0.0.3", At: at.Add(-time.Hour), Cases: []detect.PeerCase{
			{Name: detect.PeerCaseHost, Direction: detect.PeerReceive, BitsPerSecond: 5e9},
			{Name: detect.PeerCaseOffloadOn, Direction: detect.PeerSend, Err: detect.Fail(errors.New("the peer refused"))},
		}},
	}}
}

func TestPeerMetrics(t *testing.T) {
	e := New("test")
	s := fixtureSnapshot(t)
	s.Peers = peerMeasurements()
	e.Update(&State{Snapshot: s, Result: rules.Evaluate(s, rules.DefaultConfig())})
	got := scrape(t, e)
	want := map[string]float64{
		`nodetune_peer_throughput_bytes_per_second{direction="send",path="host",peer="node-b"}`:                                         9.4e9 / 8,
		`nodetune_peer_throughput_bytes_per_second{direction="send",path="tunnel",peer="node-b"}`:                                       2.9e9 / 8,
		`nodetune_peer_throughput_bytes_per_second{direction="send",path="tunnel-offload-on",peer="node-b"}`:                            2e8 / 8,
		`nodetune_peer_throughput_bytes_per_second{direction="send",path="tunnel-offload-off",peer="node-b"}`:                           9e9 / 8,
		`nodetune_peer_throughput_bytes_per_second{direction="receive",path="host",peer="node-c"}`:                                      5e9 / 8,
		`nodetune_peer_bottleneck_info{bottleneck="cpu1 at 100% softirq on the receiver",direction="send",path="tunnel",peer="node-b"}`: 1,
		`nodetune_peer_case_success{direction="send",path="tunnel-offload-on",peer="node-c"}`:                                           0,
		`nodetune_peer_case_success{direction="send",path="host",peer="node-b"}`:                                                        1,
		`nodetune_peer_measurement_timestamp_seconds{peer="node-b"}`:                                                                    1767323045,
		`nodetune_peer_measurement_timestamp_seconds{peer="node-c"}`:                                                                    1767323045 - 3600,
	}
	for series, v := range want {
		if g, ok := got[series]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", series, g, ok, v)
		}
	}
	n := 0
	for series := range got {
		if strings.HasPrefix(series, "nodetune_peer_throughput_bytes_per_second{") {
			n++
		}
	}
	if n != 5 {
		t.Errorf("%d throughput series, want 5 (no failed case, no duplicate)", n)
	}
}
