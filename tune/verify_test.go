package tune

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// peerMeasurement is a measurement to peer "b" through vxlan0 whose
// tunnel send case carries tunnel bits per second (a failed case for a
// negative figure) and whose host case carries 10 Gbit/s.
func peerMeasurement(tunnel float64, at time.Time) detect.PeerMeasurement {
	tc := detect.PeerCase{Name: detect.PeerCaseTunnel, Direction: detect.PeerSend, BitsPerSecond: tunnel}
	if tunnel < 0 {
		tc = detect.PeerCase{Name: detect.PeerCaseTunnel, Direction: detect.PeerSend, Err: detect.Fail(errors.New("no data within the deadline"))}
	}
	return detect.PeerMeasurement{Peer: "b", Address: "10.0.0.2", Device: "vxlan0", At: at, Cases: []detect.PeerCase{
		{Name: detect.PeerCaseHost, Direction: detect.PeerSend, BitsPerSecond: 10e9},
		tc,
		{Name: detect.PeerCaseTunnel, Direction: detect.PeerReceive, BitsPerSecond: 1e9},
	}}
}

func TestCompare(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	other := peerMeasurement(1e9, t0)
	other.Device = "flannel.1"
	otherPeer := peerMeasurement(1e9, t0)
	otherPeer.Peer = "c"
	for _, tt := range []struct {
		name          string
		before, after detect.PeerMeasurement
		slower        bool
		after0        float64
		err           string
	}{
		{"fell far", peerMeasurement(5e9, t0), peerMeasurement(1e8, t0), true, 1e8, ""},
		{"fell within the margin", peerMeasurement(5e9, t0), peerMeasurement(3e9, t0), false, 3e9, ""},
		{"rose", peerMeasurement(3e9, t0), peerMeasurement(9e9, t0), false, 9e9, ""},
		{"tunnel failed after, underlay fine", peerMeasurement(5e9, t0), peerMeasurement(-1, t0), true, 0, ""},
		{"tunnel failed before", peerMeasurement(-1, t0), peerMeasurement(5e9, t0), false, 0, "before the change: the tunnel case failed"},
		{"another device", peerMeasurement(5e9, t0), other, false, 0, "went through flannel.1, not vxlan0"},
		{"another peer", peerMeasurement(5e9, t0), otherPeer, false, 0, "different peers"},
		{"nothing before", peerMeasurement(0, t0), peerMeasurement(5e9, t0), false, 0, "carried nothing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Compare(tt.before, tt.after, "vxlan0", 0.5)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Compare: %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Slower() != tt.slower || m.After != tt.after0 || m.Path != "tunnel send" || m.Peer != "b" {
				t.Errorf("Compare = %+v (slower %v), want slower %v after %v", m, m.Slower(), tt.slower, tt.after0)
			}
		})
	}
}

func TestRaisesThroughput(t *testing.T) {
	ks := HostKinds(nil)
	feature := func(setting, to string) Change {
		return Change{Key: Key{Kind: rules.ChangeFeature, Target: "vxlan0", Setting: setting}, To: to}
	}
	for _, tt := range []struct {
		c    Change
		want bool
	}{
		{feature(detect.FeatureTxChecksumGeneric, on), true},
		{feature(detect.FeatureTxChecksumGeneric, off), false},
		{feature(detect.FeatureTSO, on), false}, // a follow-up, measured with its change
		{Change{Key: Key{Kind: rules.ChangeSysctl, Target: SysctlBudget}, To: "600"}, false},
		{Change{Key: Key{Kind: "unknown-kind", Target: "x"}, To: "on"}, false},
	} {
		if got := ks.RaisesThroughput(tt.c); got != tt.want {
			t.Errorf("RaisesThroughput(%s=%s) = %v, want %v", tt.c.Key, tt.c.To, got, tt.want)
		}
	}
}

// offloadPath is a measurer whose tunnel throughput follows vxlan0's tx
// checksum offload on n: on and off are the rates with it on and off
// (negative: the tunnel case fails). It counts its calls.
type offloadPath struct {
	n       *node
	on, off float64
	err     []error // the error of each call in turn, if any
	calls   int
}

func (p *offloadPath) measure(ctx context.Context, peer string) (detect.PeerMeasurement, error) {
	p.calls++
	if len(p.err) >= p.calls && p.err[p.calls-1] != nil {
		return detect.PeerMeasurement{}, p.err[p.calls-1]
	}
	rate := p.off
	if p.n.et.devs["vxlan0"][detect.FeatureTxChecksumGeneric].Active {
		rate = p.on
	}
	return peerMeasurement(rate, time.Now()), nil
}

// offloadOffPlan is the plan to turn vxlan0's offload on (it is off), and
// what the node and tuner look like.
func offloadOffPlan(t *testing.T, dir string) (*node, *Tuner, *detect.Snapshot, []rules.Finding) {
	n := newNode(t)
	n.et.setRequested(t, "vxlan0", map[string]bool{detect.FeatureTxChecksumGeneric: false, detect.FeatureTSO: false})
	s := n.snapshot(t)
	fs := rules.Evaluate(s, rules.DefaultConfig()).Findings
	return n, openTuner(t, dir, n.host), s, fs
}

// TestApplyVerifiedUndoesWhatMeasuredSlower: offload turned on makes the
// tunnel slower than the margin allows; the change and its follow-up are
// rolled back through the journal, the journal keeps both figures with
// the entry and with a hold, the next plan refuses the change as held
// (also after a restart), turning offload off is not held, and a release
// lifts the hold.
func TestApplyVerifiedUndoesWhatMeasuredSlower(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	n, tu, s, fs := offloadOffPlan(t, dir)
	before := n.et.state("vxlan0")
	path := &offloadPath{n: n, on: 1e8, off: 5e9}
	plan := tu.Plan(s, fs, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
	out, vs := tu.ApplyVerified(ctx, plan, Verifier{Peer: "10.0.0.2", Measure: path.measure, Margin: 0.5})
	want := []result{
		{"vxlan0 tx-checksum-ip-generic", Verified},
		{"vxlan0 tx-tcp-segmentation", Verified},
		{"vxlan0 tx-tcp-segmentation", Restored},
		{"vxlan0 tx-checksum-ip-generic", Restored},
	}
	if diff := cmp.Diff(want, results(out)); diff != "" {
		t.Fatalf("outcomes (-want +got):\n%s", diff)
	}
	if path.calls != 2 {
		t.Errorf("%d measurements, want one before and one after", path.calls)
	}
	if diff := cmp.Diff(before, n.et.state("vxlan0")); diff != "" {
		t.Errorf("vxlan0 after the undo (-before +after):\n%s", diff)
	}
	if len(vs) != 1 || vs[0].Verdict != VerdictUndone || vs[0].Err != nil || vs[0].Hold == nil {
		t.Fatalf("verifications: %+v", vs)
	}
	m := vs[0].Measured
	if m.Before != 5e9 || m.After != 1e8 || m.Peer != "b" || m.Device != "vxlan0" || m.Margin != 0.5 {
		t.Errorf("measured: %+v", m)
	}
	if !strings.Contains(out[0].Note, "5.0 Gbit/s before, 100 Mbit/s after") {
		t.Errorf("the change's note does not give both figures: %q", out[0].Note)
	}
	tu.Close()

	tu = openTuner(t, dir, n.host) // the journal, read again
	st := tu.j.st
	var closed *Entry
	for _, e := range st.entries {
		if e.Key.Setting == detect.FeatureTxChecksumGeneric {
			closed = e
		}
	}
	if closed == nil || closed.State != evRestored || closed.Measured == nil || !cmp.Equal(*closed.Measured, m) {
		t.Errorf("the journal entry after a restart: %+v", closed)
	}
	holds := tu.Holds()
	if len(holds) != 1 || holds[0].To != on || holds[0].Measured == nil || !cmp.Equal(*holds[0].Measured, m) || holds[0].Rule != rules.TunnelTxChecksumOff {
		t.Fatalf("holds after a restart: %+v", holds)
	}
	again := tu.Plan(n.snapshot(t), fs, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
	if len(again.Approved()) != 0 || len(again.Refusals()) != 1 || again.Refusals()[0].Reason != ReasonHeld ||
		!strings.Contains(again.Refusals()[0].Refused, "100 Mbit/s after") {
		t.Errorf("the next plan: %+v", again.Changes)
	}
	// A hold on "on" does not keep nodetune from turning offload off.
	offChange := Change{Key: holds[0].Key, To: off}
	if r := heldReason(offChange, holds); r.Refused() {
		t.Errorf("turning offload off is held too: %s", r.Why)
	}
	if rel, err := tu.Release([]string{rules.TunnelTxChecksumOff}); err != nil || len(rel) != 1 {
		t.Fatalf("release: %v, %v", rel, err)
	}
	if p := tu.Plan(n.snapshot(t), fs, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}}); len(p.Approved()) != 1 {
		t.Errorf("after the release the plan is %+v", p.Changes)
	}
}

// TestApplyVerifiedKeeps: a change whose path measured faster, or slower
// within the margin, or whose measurement after it failed, stays; a
// failed measurement is reported, not taken as evidence.
func TestApplyVerifiedKeeps(t *testing.T) {
	for _, tt := range []struct {
		name    string
		path    offloadPath
		verdict Verdict
		note    string
	}{
		{"faster", offloadPath{on: 9e9, off: 3e9}, VerdictKept, "3.0 Gbit/s before, 9.0 Gbit/s after"},
		{"within the margin", offloadPath{on: 3e9, off: 5e9}, VerdictKept, "5.0 Gbit/s before, 3.0 Gbit/s after"},
		{"measurement failed after", offloadPath{on: 1e8, off: 5e9, err: []error{nil, errors.New("peer busy"), errors.New("peer busy")}}, VerdictUnmeasured, "peer busy; the change stays, unverified"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n, tu, s, fs := offloadOffPlan(t, t.TempDir())
			path := tt.path
			path.n = n
			plan := tu.Plan(s, fs, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
			out, vs := tu.ApplyVerified(context.Background(), plan, Verifier{Peer: "b", Measure: path.measure, Margin: 0.5, Retries: 1})
			want := []result{{"vxlan0 tx-checksum-ip-generic", Verified}, {"vxlan0 tx-tcp-segmentation", Verified}}
			if diff := cmp.Diff(want, results(out)); diff != "" {
				t.Fatalf("outcomes (-want +got):\n%s", diff)
			}
			if len(vs) != 1 || vs[0].Verdict != tt.verdict || vs[0].Hold != nil || !strings.Contains(out[0].Note, tt.note) {
				t.Errorf("verification %+v, note %q", vs, out[0].Note)
			}
			if !n.et.devs["vxlan0"][detect.FeatureTxChecksumGeneric].Active || len(tu.Holds()) != 0 || len(tu.Entries()) != 2 {
				t.Errorf("the change did not stay: holds %v, entries %v", tu.Holds(), tu.Entries())
			}
		})
	}
}

// TestApplyVerifiedWaitsWithoutABaseline: when the path cannot be measured
// before the change, the change is not made, and says why; the other
// changes of the plan are made.
func TestApplyVerifiedWaitsWithoutABaseline(t *testing.T) {
	n := newNode(t)
	s := loadedSnapshot(t, n)
	tu := openTuner(t, t.TempDir(), n.host)
	path := &offloadPath{n: n, on: 9e9, off: 3e9, err: []error{errors.New("connection refused")}}
	plan := tu.Plan(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff, rules.SoftnetDrops}})
	out, vs := tu.ApplyVerified(context.Background(), plan, Verifier{Peer: "b", Measure: path.measure})
	want := []result{
		{SysctlMaxBacklog, Verified},
		{SysctlBudget, Verified},
		{"vxlan0 tx-checksum-ip-generic", Refused},
	}
	if diff := cmp.Diff(want, results(out)); diff != "" {
		t.Fatalf("outcomes (-want +got):\n%s", diff)
	}
	if r := out[2]; r.Change.Reason != ReasonUnmeasured || !strings.Contains(r.Err.Error(), "connection refused") {
		t.Errorf("the refusal: %s, %v", r.Change.Reason, r.Err)
	}
	if len(vs) != 1 || vs[0].Verdict != VerdictDeferred || n.et.devs["vxlan0"][detect.FeatureTxChecksumGeneric].Active {
		t.Errorf("verifications %+v; offload active: %v", vs, n.et.devs["vxlan0"][detect.FeatureTxChecksumGeneric].Active)
	}
}

// TestReleaseMeasured: a hold nodetune made after offload on measured
// slower is lifted by a later measurement of the same device that found
// offload on no slower than off; not by an older one, one of another
// device, or one where it still hurts; a user's hold is never lifted by a
// measurement.
func TestReleaseMeasured(t *testing.T) {
	ctx := context.Background()
	n, tu, s, fs := offloadOffPlan(t, t.TempDir())
	path := &offloadPath{n: n, on: 1e8, off: 5e9}
	plan := tu.Plan(s, fs, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
	_, vs := tu.ApplyVerified(ctx, plan, Verifier{Peer: "b", Measure: path.measure, Margin: 0.5})
	if len(vs) != 1 || vs[0].Hold == nil {
		t.Fatalf("verifications: %+v", vs)
	}
	at := vs[0].Measured.AfterAt
	offload := func(dev string, on, off float64, when time.Time) detect.PeerMeasurement {
		return detect.PeerMeasurement{Peer: "c", Device: dev, At: when, Cases: []detect.PeerCase{
			{Name: detect.PeerCaseOffloadOn, Direction: detect.PeerSend, BitsPerSecond: on},
			{Name: detect.PeerCaseOffloadOff, Direction: detect.PeerSend, BitsPerSecond: off},
		}}
	}
	for _, ms := range [][]detect.PeerMeasurement{
		{offload("vxlan0", 9e9, 3e9, at.Add(-time.Minute))}, // older
		{offload("flannel.1", 9e9, 3e9, at.Add(time.Hour))}, // another device
		{offload("vxlan0", 1e9, 5e9, at.Add(time.Hour))},    // still hurts
	} {
		if rel, err := tu.ReleaseMeasured(ms, 0.5); err != nil || len(rel) != 0 {
			t.Errorf("released %v (%v) on %+v", rel, err, ms)
		}
	}
	rel, err := tu.ReleaseMeasured([]detect.PeerMeasurement{offload("vxlan0", 9e9, 3e9, at.Add(time.Hour))}, 0.5)
	if err != nil || len(rel) != 1 || len(tu.Holds()) != 0 {
		t.Fatalf("released %v (%v); holds left %v", rel, err, tu.Holds())
	}
	// A user's rollback holds the setting whatever a measurement says.
	if _, err := tu.Hold(tu.Rollback(ctx, false)); err != nil {
		t.Fatal(err)
	}
	tu.ApplyVerified(ctx, tu.Plan(s, fs, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}}), Verifier{})
	if _, err := tu.Hold(tu.Rollback(ctx, false)); err != nil || len(tu.Holds()) != 2 { // the feature and TSO
		t.Fatalf("user hold: %v, %v", tu.Holds(), err)
	}
	if rel, _ := tu.ReleaseMeasured([]detect.PeerMeasurement{offload("vxlan0", 9e9, 3e9, time.Now().Add(time.Hour))}, 0.5); len(rel) != 0 {
		t.Errorf("a measurement lifted the user's hold: %v", rel)
	}
}

// TestApplyVerifiedRetriesAfter: a measurement after the change that fails
// (the peer busy with another run) is tried again, and its verdict stands.
func TestApplyVerifiedRetriesAfter(t *testing.T) {
	n, tu, s, fs := offloadOffPlan(t, t.TempDir())
	path := &offloadPath{n: n, on: 1e8, off: 5e9, err: []error{nil, errors.New("429")}}
	plan := tu.Plan(s, fs, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
	_, vs := tu.ApplyVerified(context.Background(), plan, Verifier{Peer: "b", Measure: path.measure, Margin: 0.5, Retries: 2, RetryWait: time.Millisecond})
	if len(vs) != 1 || vs[0].Verdict != VerdictUndone || path.calls != 3 {
		t.Errorf("verification %+v after %d measurements", vs, path.calls)
	}
}
