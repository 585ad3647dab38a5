package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// TestPeerLines: a recent measurement's figures and bottleneck, a failed
// case with its reason, a stale one by its age only, one dated after the
// run as such; JSON marks each.
func TestPeerLines(t *testing.T) {
	taken := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &detect.Snapshot{Window: time.Second, Taken: taken, Kernel: detect.Kernel{Release: "6.1.0"}}
	s.Peers = detect.Peers{Measurements: []detect.PeerMeasurement{
		{Peer: "node-b", Address: "10.0.0.2", Device: "flannel.1", MTU: 1450, At: taken.Add(-90 * time.Minute), Cases: []detect.PeerCase{
			{Name: detect.PeerCaseTunnel, Direction: detect.PeerSend, BitsPerSecond: 2.9e9, Bottleneck: "cpu1 at 100% softirq on the receiver"},
			{Name: detect.PeerCaseOffloadOn, Direction: detect.PeerSend, Err: detect.Fail(errors.New("the peer refused"))},
		}},
		{Peer: "node-c", Address: "10.0.0.3", At: taken.Add(-7 * time.Hour), Cases: []detect.PeerCase{
			{Name: detect.PeerCaseHost, Direction: detect.PeerSend, BitsPerSecond: 9e9},
		}},
		{Peer: "node-d", Address: "10.0.0.4", At: taken.Add(24 * time.Hour), Cases: []detect.PeerCase{
			{Name: detect.PeerCaseHost, Direction: detect.PeerSend, BitsPerSecond: 9e9},
		}},
	}}
	doc := Build("test", s, rules.Result{})
	var out bytes.Buffer
	if err := WriteText(&out, doc, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"  peers       node-b (10.0.0.2), measured 1h30m0s ago, copying flannel.1 mtu 1450: tunnel send 2.9 Gbit/s (cpu1 at 100% softirq on the receiver); tunnel-offload-on send failed (the peer refused)\n",
		"              node-c (10.0.0.3): measured 7h0m0s ago (2026-01-01T20:04:05Z), stale: older than 6h0m0s, not used\n",
		"              node-d (10.0.0.4): dated 24h0m0s after this run (2026-01-03T03:04:05Z), later than this node's clock: its age cannot be told, not used\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in:\n%s", want, text)
		}
	}
	if strings.Contains(text, "9.0 Gbit/s") {
		t.Errorf("a stale measurement's figure is shown:\n%s", text)
	}
	var got []bool
	for _, p := range doc.Peers {
		got = append(got, p.Recent)
	}
	if diff := cmp.Diff([]bool{true, false, false}, got); diff != "" {
		t.Errorf("recent (-want +got):\n%s", diff)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"peers":[{"peer":"node-b"`) || !strings.Contains(string(b), `"age_seconds":25200,"recent":false`) {
		t.Errorf("JSON lacks the peers:\n%s", b)
	}
}

// TestNoPeerLine: no measurement, no line; an unreadable file, its reason.
func TestNoPeerLine(t *testing.T) {
	s := &detect.Snapshot{Window: time.Second, Kernel: detect.Kernel{Release: "6.1.0"}}
	var out bytes.Buffer
	if err := WriteText(&out, Build("test", s, rules.Result{}), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "peers") {
		t.Errorf("a peers line without measurements:\n%s", out.String())
	}
	s.Peers.Err = detect.Fail(errors.New("permission denied"))
	out.Reset()
	if err := WriteText(&out, Build("test", s, rules.Result{}), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "  peers       unknown (permission denied)\n") {
		t.Errorf("no unknown line:\n%s", out.String())
	}
}
