package daemon

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/safchain/ethtool"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/probes"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// tunnelEthtool is one VXLAN device's ethtool features, every one
// changeable, requested and active alike.
type tunnelEthtool struct {
	fs map[string]ethtool.FeatureState
}

func newTunnelEthtool(offload bool) *tunnelEthtool {
	fs := map[string]ethtool.FeatureState{}
	for _, f := range append([]string{detect.FeatureTxChecksumGeneric}, tune.SegmentationFeatures...) {
		fs[f] = ethtool.FeatureState{Available: true, Requested: true, Active: true}
	}
	fs[detect.FeatureTxChecksumGeneric] = ethtool.FeatureState{Available: true, Requested: offload, Active: offload}
	return &tunnelEthtool{fs: fs}
}

func (e *tunnelEthtool) FeaturesWithState(dev string) (map[string]ethtool.FeatureState, error) {
	if dev != "vxlan0" {
		return nil, errors.New("no such device")
	}
	return maps.Clone(e.fs), nil
}

func (e *tunnelEthtool) Change(dev string, config map[string]bool) error {
	for name, v := range config {
		e.fs[name] = ethtool.FeatureState{Available: true, Requested: v, Active: v}
	}
	return nil
}

func (e *tunnelEthtool) offload() bool { return e.fs[detect.FeatureTxChecksumGeneric].Active }

// tunnelPath is a fake peer measurer: the tunnel's send rate follows
// vxlan0's offload (on and off), and the call numbered failAt fails.
type tunnelPath struct {
	et      *tunnelEthtool
	on, off float64
	failAt  int
	calls   int
	peers   []string
}

func (p *tunnelPath) measure(ctx context.Context, peer string) (detect.PeerMeasurement, error) {
	p.calls++
	p.peers = append(p.peers, peer)
	if p.calls == p.failAt {
		return detect.PeerMeasurement{}, errors.New("the peer answered 429: a measurement already runs")
	}
	rate := p.off
	if p.et.offload() {
		rate = p.on
	}
	return detect.PeerMeasurement{Peer: "node-b", Address: "10.0.0.2", Device: "vxlan0", At: time.Now(), Cases: []detect.PeerCase{
		{Name: detect.PeerCaseHost, Direction: detect.PeerSend, BitsPerSecond: 10e9},
		{Name: detect.PeerCaseTunnel, Direction: detect.PeerSend, BitsPerSecond: rate},
	}}, nil
}

// offloadNode is a snapshot of a node whose vxlan0 has tx checksum
// offload as et says, on a kernel with the NAT checksum fix, and the
// finding that asks to turn it on.
func offloadNode(t *testing.T, et *tunnelEthtool) (*detect.Snapshot, []rules.Finding) {
	t.Helper()
	v, err := detect.ParseRelease("6.18.0")
	if err != nil {
		t.Fatal(err)
	}
	s := &detect.Snapshot{
		Kernel: detect.Kernel{Release: "6.18.0", Version: v},
		Tunnels: detect.Tunnels{Devices: []detect.Tunnel{{Name: "vxlan0", Index: 5, Kind: detect.KindVXLAN, Up: true,
			Features: probes.WatchedFeatures(et.fs)}}},
	}
	f := rules.Finding{Rule: rules.TunnelTxChecksumOff, Subject: "vxlan0", Summary: "offload off", Fix: rules.Fix{Auto: true,
		Changes: []rules.Change{{Kind: rules.ChangeFeature, Target: "vxlan0", Setting: detect.FeatureTxChecksumGeneric, Value: "on"}}}}
	return s, []rules.Finding{f}
}

// verifyingDaemon is a daemon that remediates through tune on et, with
// the journal in dir, measuring against peer with p.
func verifyingDaemon(t *testing.T, dir string, et *tunnelEthtool, p *tunnelPath, peer string) (*Daemon, *recorder, TuneRemediator) {
	t.Helper()
	host := tune.NewHost(t.TempDir(), t.TempDir(), et)
	tu, err := tune.Open(dir, host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tu.Close() })
	r := TuneRemediator{Tuner: tu, System: host, Verify: &Verify{Measure: p.measure, Peer: peer}}
	d, rec := newTestDaemon(t, r, &clock{time.Unix(1e9, 0)}, "")
	return d, rec, r
}

func evidence(f rules.Finding) map[string]string {
	ev := map[string]string{}
	for _, e := range f.Evidence {
		ev[e.Name] = e.Value
	}
	return ev
}

// TestRemediateUndoesWhatMeasuredSlower: offload turned on measures
// slower on the tunnel to the peer; remediate mode rolls it back through
// the journal, holds it, and raises remediation-measured-slower with both
// figures, every cycle and after a restart, without measuring again.
func TestRemediateUndoesWhatMeasuredSlower(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	et := newTunnelEthtool(false)
	p := &tunnelPath{et: et, on: 80e6, off: 4e9}
	d, rec, _ := verifyingDaemon(t, dir, et, p, "10.0.0.2:9849")
	s, fs := offloadNode(t, et)
	own := d.remediate(ctx, s, fs)
	if et.offload() {
		t.Error("offload stays on after it measured slower")
	}
	if p.calls != 2 || p.peers[0] != "10.0.0.2:9849" {
		t.Errorf("measurements: %d to %v, want one before and one after, to the given peer", p.calls, p.peers)
	}
	var got []string
	for _, st := range rec.steps {
		for _, o := range st.Outcomes {
			got = append(got, string(o.Action)+" "+string(o.Result)+" "+string(o.Verdict))
		}
	}
	if want := []string{"apply verified undone", "rollback restored "}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("outcomes the outputs received: %q, want %q", got, want)
	}
	check := func(when string, own []rules.Finding) {
		t.Helper()
		if len(own) != 1 || own[0].Rule != rules.RemediationMeasuredSlower || own[0].Subject != "vxlan0" {
			t.Fatalf("%s: findings %+v", when, own)
		}
		if ev := evidence(own[0]); ev["before_bps"] != "4000000000" || ev["after_bps"] != "80000000" || ev["peer"] != "node-b" {
			t.Errorf("%s: evidence %v", when, ev)
		}
	}
	check("the cycle that undid it", own)
	s, fs = offloadNode(t, et)
	check("the next cycle", d.remediate(ctx, s, fs))
	if p.calls != 2 || et.offload() {
		t.Errorf("the next cycle measured again (%d) or turned offload on (%v)", p.calls, et.offload())
	}
	d.opt.Remediator.(TuneRemediator).Tuner.Close()

	d, _, _ = verifyingDaemon(t, dir, et, p, "10.0.0.2:9849") // a restart
	check("after a restart", d.remediate(ctx, s, fs))
	if p.calls != 2 || et.offload() {
		t.Errorf("after a restart it measured again (%d) or turned offload on (%v)", p.calls, et.offload())
	}
}

// TestRemediateKeepsWhatDidNotMeasureSlower: offload on that measured
// faster stays; so does one whose measurement after the change failed
// (reported as unmeasured, not undone blindly).
func TestRemediateKeepsWhatDidNotMeasureSlower(t *testing.T) {
	for _, tt := range []struct {
		name    string
		path    tunnelPath
		peer    string
		verdict tune.Verdict
		calls   int
	}{
		{"faster", tunnelPath{on: 9e9, off: 3e9}, "b", tune.VerdictKept, 2},
		{"measurement failed after", tunnelPath{on: 80e6, off: 4e9, failAt: 2}, "b", tune.VerdictUnmeasured, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			et := newTunnelEthtool(false)
			p := tt.path
			p.et = et
			d, _, r := verifyingDaemon(t, t.TempDir(), et, &p, tt.peer)
			s, fs := offloadNode(t, et)
			out, err := r.Apply(context.Background(), s, fs)
			if err != nil || len(out) != 1 || out[0].Result != tune.Verified || out[0].Verdict != tt.verdict {
				t.Fatalf("apply: %+v, %v", out, err)
			}
			if !et.offload() || p.calls != tt.calls || len(r.Tuner.Holds()) != 0 {
				t.Errorf("offload %v after %d measurements, holds %v", et.offload(), p.calls, r.Tuner.Holds())
			}
			if own := d.remediate(context.Background(), s, nil); len(own) != 0 {
				t.Errorf("findings: %+v", own)
			}
		})
	}
}

// TestRemediateMeasuresAgainstTheLastPeer: without a peer given, remediate
// mode measures against the peer of the newest recent saved measurement,
// not a stale one; a hold it made after offload measured slower is lifted
// when a newer measurement of the device finds offload on no slower than
// off, and the change is then made and measured again.
func TestRemediateMeasuresAgainstTheLastPeer(t *testing.T) {
	ctx := context.Background()
	et := newTunnelEthtool(false)
	p := &tunnelPath{et: et, on: 80e6, off: 4e9}
	d, _, r := verifyingDaemon(t, t.TempDir(), et, p, "")
	s, fs := offloadNode(t, et)
	s.Taken = time.Now()
	saved := func(addr string, age time.Duration, on, off float64) detect.PeerMeasurement {
		return detect.PeerMeasurement{Peer: "node-" + addr, Address: addr, Device: "vxlan0", At: s.Taken.Add(-age), Cases: []detect.PeerCase{
			{Name: detect.PeerCaseOffloadOn, Direction: detect.PeerSend, BitsPerSecond: on},
			{Name: detect.PeerCaseOffloadOff, Direction: detect.PeerSend, BitsPerSecond: off},
		}}
	}
	s.Peers.Measurements = []detect.PeerMeasurement{
		saved("10.0.0.7", 2*time.Hour, 5e9, 4e9),
		saved("10.0.0.8", 20*time.Minute, 5e9, 4e9),
		saved("10.0.0.9", 7*time.Hour, 5e9, 4e9), // stale
	}
	if own := d.remediate(ctx, s, fs); len(own) != 1 || et.offload() {
		t.Fatalf("offload on %v, findings %+v", et.offload(), own)
	}
	if strings.Join(p.peers, " ") != "10.0.0.8 10.0.0.8" {
		t.Errorf("measured against %v, want the newest recent peer twice", p.peers)
	}
	// The schedule's next measurement, taken after the undo, finds offload
	// on faster on this device: the hold goes, and the change is tried
	// again, measured again.
	p.on = 9e9
	later := saved("10.0.0.8", -time.Minute, 9e9, 4e9)
	s2, fs2 := offloadNode(t, et)
	s2.Taken = time.Now().Add(time.Minute)
	s2.Peers.Measurements = []detect.PeerMeasurement{later}
	if own := d.remediate(ctx, s2, fs2); len(own) != 0 || !et.offload() {
		t.Errorf("after a measurement that finds offload helps: offload on %v, findings %+v", et.offload(), own)
	}
	if p.calls != 4 || len(r.Tuner.Holds()) != 0 {
		t.Errorf("%d measurements, holds %v", p.calls, r.Tuner.Holds())
	}
}

// TestRemediateWithoutAPeer: with a measurer but no peer to measure
// against yet, offload is not turned on unmeasured: the change waits,
// refused as unmeasured. Without a measurer at all (no peer token), it is
// made unverified, as before.
func TestRemediateWithoutAPeer(t *testing.T) {
	et := newTunnelEthtool(false)
	p := &tunnelPath{et: et, on: 9e9, off: 3e9}
	_, _, r := verifyingDaemon(t, t.TempDir(), et, p, "")
	s, fs := offloadNode(t, et)
	out, err := r.Apply(context.Background(), s, fs)
	if err != nil || len(out) != 1 || out[0].Result != tune.Refused || out[0].Reason != tune.ReasonUnmeasured ||
		out[0].Verdict != tune.VerdictDeferred || !strings.Contains(out[0].Detail, "no peer to measure against") {
		t.Fatalf("apply: %+v, %v", out, err)
	}
	if et.offload() || p.calls != 0 {
		t.Errorf("offload %v after %d measurements", et.offload(), p.calls)
	}
	// A node whose token file holds no token yet takes no part in peer
	// measurement: it remediates unverified, as without a measurer.
	r.Verify.Active = func() bool { return false }
	if out, err := r.Apply(context.Background(), s, fs); err != nil || len(out) != 1 || out[0].Result != tune.Verified || out[0].Verdict != "" || !et.offload() {
		t.Errorf("without a token: %+v, %v; offload %v", out, err, et.offload())
	}
	if p.calls != 0 {
		t.Errorf("measured %d times without a token", p.calls)
	}
}
