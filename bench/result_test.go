package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
)

// published is the reference of KNOWLEDGE.md: 36.5, 30.5 and 6.9 Gbit/s
// over 2 s each.
func published() Result {
	r := Result{
		Kind: "vxlan", Tunnel: "vxlan.calico", TunnelMTU: 1450, UnderlayMTU: 1500, Mirrored: "vxlan.calico",
		Streams: 1, Duration: 2 * time.Second, Warmup: 300 * time.Millisecond,
		Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Cases: []Case{
			newCase(CaseUnderlay, PathUnderlay, 9_125_000_000, 2*time.Second),
			newCase(CaseOffloadOn, PathTunnel, 7_625_000_000, 2*time.Second),
			newCase(CaseOffloadOff, PathTunnel, 1_725_000_000, 2*time.Second),
		},
	}
	r.summarize()
	return r
}

func TestNewCase(t *testing.T) {
	c := newCase(CaseUnderlay, PathUnderlay, 1_000_000, 500*time.Millisecond)
	if c.BitsPerSecond != 16e6 {
		t.Errorf("1 MB in 0.5 s = %g bit/s, want 16e6", c.BitsPerSecond)
	}
	if c := newCase(CaseUnderlay, PathUnderlay, 10, 0); c.BitsPerSecond != 0 {
		t.Errorf("no elapsed time gave %g bit/s, want 0", c.BitsPerSecond)
	}
}

func TestRatiosAndLoss(t *testing.T) {
	r := published()
	want := Ratios{TunnelOverUnderlay: 30.5 / 36.5, OffOverOn: 6.9 / 30.5}
	if diff := cmp.Diff(want, r.Ratios, cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })); diff != "" {
		t.Errorf("ratios (-want +got):\n%s", diff)
	}
	loss, ok := r.Loss()
	if !ok || loss < 0.773 || loss > 0.774 {
		t.Errorf("Loss() = %g, %t; want 1-6.9/30.5 = 0.7738", loss, ok)
	}
	if r.MeasuredLoss == nil || *r.MeasuredLoss != loss {
		t.Errorf("MeasuredLoss = %v, want %g", r.MeasuredLoss, loss)
	}
	if got := r.ThroughputByCase(); len(got) != 3 || got[CaseOffloadOff] != 6.9e9 {
		t.Errorf("ThroughputByCase() = %v", got)
	}

	// Off faster than on (noise on an idle path) is no loss, not a gain.
	r.Cases[2].BitsPerSecond = 40e9
	r.summarize()
	if loss, ok := r.Loss(); !ok || loss != 0 {
		t.Errorf("Loss() with off faster than on = %g, %t; want 0, true", loss, ok)
	}

	// Without the off case there is no measured loss and no off/on ratio.
	r.Cases = r.Cases[:2]
	r.summarize()
	if _, ok := r.Loss(); ok || r.MeasuredLoss != nil || r.Ratios.OffOverOn != 0 {
		t.Errorf("without the off case: loss present %t, MeasuredLoss %v, off/on %g", ok, r.MeasuredLoss, r.Ratios.OffOverOn)
	}
	if r.Ratios.TunnelOverUnderlay == 0 {
		t.Error("tunnel/underlay went missing with the off case")
	}
}

func TestJSONShape(t *testing.T) {
	b, err := json.Marshal(published())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []struct {
			Name          string  `json:"name"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"cases"`
		Ratios       map[string]float64 `json:"ratios"`
		MeasuredLoss float64            `json:"measured_loss"`
		DurationNS   int64              `json:"duration_ns"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range doc.Cases {
		names = append(names, c.Name)
	}
	if diff := cmp.Diff([]string{"underlay", "tunnel-offload-on", "tunnel-offload-off"}, names); diff != "" {
		t.Errorf("case names (-want +got):\n%s", diff)
	}
	if doc.Cases[0].BitsPerSecond != 36.5e9 || doc.DurationNS != 2e9 || doc.MeasuredLoss < 0.77 {
		t.Errorf("decoded %+v", doc)
	}
	if _, ok := doc.Ratios["node_features_over_on"]; ok {
		t.Error("a ratio of a case that was not run is in the JSON")
	}
	if doc.Ratios["offload_off_over_on"] == 0 || doc.Ratios["tunnel_over_underlay"] == 0 {
		t.Errorf("ratios = %v", doc.Ratios)
	}
}

func TestWriteText(t *testing.T) {
	r := published()
	r.Cases = append(r.Cases, newCase(CaseNodeFeatures, PathTunnel, 1_725_000_000, 2*time.Second))
	r.summarize()
	var b bytes.Buffer
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	want := `vxlan tunnel vxlan.calico, MTU 1450, over a veth underlay with MTU 1500 (mirroring this node's vxlan.calico)
1 TCP stream, 2s per case after a 300ms warm-up

CASE                    THROUGHPUT
underlay               36.5 Gbit/s
tunnel-offload-on      30.5 Gbit/s  84% of underlay
tunnel-offload-off      6.9 Gbit/s  23% of offload-on
tunnel-node-features    6.9 Gbit/s  23% of offload-on

tunnel/underlay  0.84  the tunnel costs 16% of the underlay's throughput
off/on           0.23  tx checksum offload off costs 77% of the tunnel's throughput
node/on          0.23  with this node's own tunnel features
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}

	// A run cut short prints what it has and no ratio it lacks.
	r.Cases = r.Cases[:1]
	r.Streams = 4
	r.summarize()
	b.Reset()
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "off/on") || !strings.Contains(b.String(), "4 TCP streams") {
		t.Errorf("text of a one-case run:\n%s", b.String())
	}

	// A tunnel as fast as its underlay (noise) costs nothing, not -2%.
	r = published()
	r.Cases[1].BitsPerSecond = 1.02 * r.Cases[0].BitsPerSecond
	r.summarize()
	b.Reset()
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "tunnel/underlay  1.02  the tunnel cost nothing measurable") {
		t.Errorf("text of a tunnel faster than its underlay:\n%s", b.String())
	}
}

func TestMirrorAndNodeTunnel(t *testing.T) {
	ts := detect.Tunnels{Devices: []detect.Tunnel{
		{Name: "genev_sys_6081", Kind: "geneve", MTU: 1400, Port: 6081},
		{Name: "vxlan-v6.calico", Kind: "vxlan", MTU: 1430, IPv6: true, Up: true},
		{Name: "vxlan.calico", Kind: "vxlan", VNI: 4096, Port: 4789, MTU: 8951, Up: true,
			Underlay: &detect.Underlay{Name: "ens5", MTU: 9001},
			Features: detect.Features{State: map[string]bool{detect.FeatureTxChecksumGeneric: false}, Fixed: []string{detect.FeatureGRO}}},
		{Name: "wg0", Kind: "wireguard", Up: true},
	}}
	got, ok := NodeTunnel(ts, "")
	if !ok || got.Name != "vxlan.calico" {
		t.Fatalf("NodeTunnel picked %q, %t; want the IPv4 tunnel that is up", got.Name, ok)
	}
	if got, ok := NodeTunnel(ts, "genev_sys_6081"); !ok || got.Kind != "geneve" {
		t.Errorf("NodeTunnel by name = %+v, %t", got, ok)
	}
	if _, ok := NodeTunnel(ts, "flannel.1"); ok {
		t.Error("NodeTunnel found a device that is not there")
	}
	if _, ok := NodeTunnel(detect.Tunnels{}, ""); ok {
		t.Error("NodeTunnel found a tunnel on a node without any")
	}
	down := detect.Tunnels{Devices: []detect.Tunnel{{Name: "flannel.1", Kind: "vxlan", MTU: 1450}}}
	flannel, ok := NodeTunnel(down, "")
	if !ok || flannel.Name != "flannel.1" {
		t.Errorf("NodeTunnel with only a down tunnel = %q, %t; want it anyway", flannel.Name, ok)
	}

	var o Options
	o.Mirror(flannel)
	want := Options{Kind: "vxlan", TunnelName: "flannel.1", Mirrored: "flannel.1", TunnelMTU: 1450, UnderlayMTU: 1500}
	if diff := cmp.Diff(want, o); diff != "" {
		t.Errorf("Mirror without an underlay (-want +got):\n%s", diff)
	}
	calico, _ := NodeTunnel(ts, "")
	o.Mirror(calico)
	if o.UnderlayMTU != 9001 || o.TunnelMTU != 8951 || o.VNI != 4096 || o.NodeFeatures[detect.FeatureTxChecksumGeneric] ||
		len(o.NodeFeatures) != 1 || len(o.NodeFixed) != 1 {
		t.Errorf("Mirror(vxlan.calico) = %+v", o)
	}
	if s := o.steps(); len(s) != 4 || s[3].name != CaseNodeFeatures || !s[3].copied {
		t.Errorf("steps with node features = %+v", s)
	}
	// An underlay too small for the tunnel (a misconfigured node) is not
	// copied: the testbed gets just enough.
	small := calico
	small.Underlay = &detect.Underlay{MTU: 1500}
	o.Mirror(small)
	if o.UnderlayMTU != 9001 {
		t.Errorf("underlay MTU for a 8951 tunnel over 1500 = %d, want 9001", o.UnderlayMTU)
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Kind != "vxlan" || o.Duration != 2*time.Second || o.Streams != 1 || o.Prefix != DefaultPrefix || o.Log == nil {
		t.Errorf("defaults = %+v", o)
	}
	if s := o.steps(); len(s) != 3 {
		t.Errorf("steps without node features = %+v", s)
	}
	for _, bad := range []Options{{Streams: -1}, {Streams: 1000}, {Duration: -time.Second}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
