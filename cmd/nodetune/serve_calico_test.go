package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/safchain/ethtool"

	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// fakeEthtool is one tunnel device whose features all change freely.
type fakeEthtool struct {
	mu  sync.Mutex
	dev string
	on  map[string]bool
}

func (e *fakeEthtool) FeaturesWithState(dev string) (map[string]ethtool.FeatureState, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if dev != e.dev {
		return nil, errors.New("no such device")
	}
	out := map[string]ethtool.FeatureState{}
	for _, f := range append([]string{detect.FeatureTxChecksumGeneric}, tune.SegmentationFeatures...) {
		out[f] = ethtool.FeatureState{Available: true, Requested: e.on[f], Active: e.on[f]}
	}
	return out, nil
}

func (e *fakeEthtool) Change(dev string, config map[string]bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, v := range config {
		e.on[k] = v
	}
	return nil
}

func (e *fakeEthtool) set(f string, v bool) { e.mu.Lock(); e.on[f] = v; e.mu.Unlock() }
func (e *fakeEthtool) get(f string) bool    { e.mu.Lock(); defer e.mu.Unlock(); return e.on[f] }

// memFelix is an API server of FelixConfigurations, specs by name.
type memFelix struct {
	objs map[string]string
	rv   int
}

func (m *memFelix) APIVersion() string { return "crd.projectcalico.org/v1" }
func (m *memFelix) GetSpec(ctx context.Context, name string) (string, string, bool, error) {
	s, ok := m.objs[name]
	return s, strconv.Itoa(m.rv), ok, nil
}
func (m *memFelix) CreateSpec(ctx context.Context, name, spec string) error {
	m.objs[name] = spec
	m.rv++
	return nil
}
func (m *memFelix) UpdateSpec(ctx context.Context, name, rv, spec string) error {
	if rv != strconv.Itoa(m.rv) {
		return errors.New("conflict")
	}
	m.objs[name] = spec
	m.rv++
	return nil
}
func (m *memFelix) DeleteObject(ctx context.Context, name, rv string) error {
	if rv != strconv.Itoa(m.rv) {
		return errors.New("conflict")
	}
	delete(m.objs, name)
	m.rv++
	return nil
}

// felixProc makes procfs hold exactly the Felix processes pids.
func felixProc(t *testing.T, procfs string, pids ...int) {
	t.Helper()
	ents, _ := os.ReadDir(procfs)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(procfs, e.Name()))
	}
	for _, p := range pids {
		dir := filepath.Join(procfs, strconv.Itoa(p))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte("calico-node\x00-felix\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// coopNode is a node whose vxlan.calico Felix keeps off, with serve's
// cooperating Remediator over a fake device and API server.
type coopNode struct {
	et    *fakeEthtool
	api   *memFelix
	rem   *felixRemediator
	now   time.Time
	proc  string
	tuner *tune.Tuner
}

func newCoopNode(t *testing.T) *coopNode {
	n := &coopNode{
		et:   &fakeEthtool{dev: "vxlan.calico", on: map[string]bool{}},
		api:  &memFelix{objs: map[string]string{"default": `{"featureDetectOverride":"ChecksumOffloadBroken=true"}`}, rv: 7},
		now:  time.Unix(1e9, 0),
		proc: t.TempDir(),
	}
	for _, f := range tune.SegmentationFeatures {
		n.et.on[f] = true
	}
	host := tune.NewHost(t.TempDir(), t.TempDir(), n.et)
	host.More = []tune.Kind{tune.NewFelixKind(n.api)}
	tu, err := tune.Open(t.TempDir(), host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tu.Close() })
	n.tuner = tu
	n.rem = newFelixRemediator(daemon.TuneRemediator{Tuner: tu, System: host}, n.proc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	n.rem.now = func() time.Time { return n.now }
	felixProc(t, n.proc, 100)
	return n
}

// cycle is one serve cycle: a snapshot of the node, its findings, the
// Remediator's holdings and apply.
func (n *coopNode) cycle(t *testing.T) []rules.Finding {
	t.Helper()
	ctx := context.Background()
	v, _ := detect.ParseRelease("6.18.0")
	s := &detect.Snapshot{
		Kernel: detect.Kernel{Release: "6.18.0", Version: v},
		Tunnels: detect.Tunnels{Devices: []detect.Tunnel{{Name: "vxlan.calico", Kind: detect.KindVXLAN, Port: 4789,
			Features: detect.Features{State: map[string]bool{detect.FeatureTxChecksumGeneric: n.et.get(detect.FeatureTxChecksumGeneric)}}}}},
		CNI: detect.CNI{Name: detect.CNICalico, FelixRunning: true},
	}
	s.Felix = detect.FelixObjects{Read: true, APIVersion: n.api.APIVersion(), Node: "n1"}
	for name, obj := range map[string]*detect.FelixObject{"default": &s.Felix.Default, "node.n1": &s.Felix.NodeObj} {
		if spec, ok := n.api.objs[name]; ok {
			*obj = detect.FelixObject{Exists: true, ResourceVersion: strconv.Itoa(n.api.rv), Spec: spec}
		}
	}
	if _, err := n.rem.Holdings(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.rem.Apply(ctx, s, rules.Evaluate(s, rules.DefaultConfig()).Findings); err != nil {
		t.Fatal(err)
	}
	return n.rem.Conflicts()
}

// TestServeCooperationWaitsForFelix: the override first; offload only
// once Felix restarted (a new Felix process); then it is checked each
// cycle, and after two reconcile periods the cooperation is done.
func TestServeCooperationWaitsForFelix(t *testing.T) {
	n := newCoopNode(t)
	n.cycle(t)
	if _, ok := n.api.objs["node.n1"]; !ok || n.et.get(detect.FeatureTxChecksumGeneric) || n.rem.phase != felixRestarting {
		t.Fatalf("first cycle: node.n1 %q, offload %v, phase %d", n.api.objs["node.n1"], n.et.get(detect.FeatureTxChecksumGeneric), n.rem.phase)
	}
	n.now = n.now.Add(30 * time.Second)
	n.cycle(t)
	if n.et.get(detect.FeatureTxChecksumGeneric) {
		t.Fatal("offload went on while Felix had not restarted")
	}
	felixProc(t, n.proc, 200) // Felix restarted
	n.cycle(t)
	if !n.et.get(detect.FeatureTxChecksumGeneric) || n.rem.phase != felixVerifying {
		t.Fatalf("after Felix restarted: offload %v, phase %d", n.et.get(detect.FeatureTxChecksumGeneric), n.rem.phase)
	}
	n.now = n.now.Add(10 * time.Second)
	n.cycle(t)
	if n.rem.phase != felixVerifying {
		t.Fatalf("done after 10 s: phase %d", n.rem.phase)
	}
	n.now = n.now.Add(felixStaysOn)
	if c := n.cycle(t); len(c) != 0 || n.rem.phase != felixDone {
		t.Fatalf("after %s: phase %d, conflicts %+v", felixStaysOn, n.rem.phase, c)
	}
}

// TestServeCooperationFelixFights: Felix turns offload off again despite
// the override: serve rolls back the override and offload, raises
// remediation-conflict naming Felix, and writes no override again.
func TestServeCooperationFelixFights(t *testing.T) {
	n := newCoopNode(t)
	n.cycle(t)
	felixProc(t, n.proc, 200)
	n.cycle(t)
	if !n.et.get(detect.FeatureTxChecksumGeneric) {
		t.Fatal("offload not on after Felix restarted")
	}
	n.et.set(detect.FeatureTxChecksumGeneric, false) // Felix, ten seconds later
	n.now = n.now.Add(10 * time.Second)
	c := n.cycle(t)
	if len(c) != 1 || c[0].Rule != rules.RemediationConflict || c[0].Owner == nil || c[0].Owner.Name != detect.OwnerFelix {
		t.Fatalf("conflicts %+v; want remediation-conflict naming calico-felix", c)
	}
	if _, ok := n.api.objs["node.n1"]; ok {
		t.Errorf("node.n1 left after the conflict: %s", n.api.objs["node.n1"])
	}
	for range 3 {
		n.now = n.now.Add(30 * time.Second)
		n.cycle(t)
	}
	if _, ok := n.api.objs["node.n1"]; ok || n.et.get(detect.FeatureTxChecksumGeneric) {
		t.Errorf("after the conflict, serve wrote the override (%v) or offload (%v) again", ok, n.et.get(detect.FeatureTxChecksumGeneric))
	}
	if len(n.tuner.Entries()) != 0 {
		t.Errorf("entries still open: %+v", n.tuner.Entries())
	}
}

// TestWaitFelixRestart: fix waits until none of the Felix processes seen
// before the override runs and another does.
func TestWaitFelixRestart(t *testing.T) {
	proc := t.TempDir()
	felixProc(t, proc, 100, 101)
	before, err := felixPIDs(proc)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- waitFelixRestart(context.Background(), io.Discard, proc, before, nil) }()
	time.Sleep(400 * time.Millisecond)
	felixProc(t, proc, 101, 102) // one old process still runs: not yet
	select {
	case err := <-done:
		t.Fatalf("returned (%v) while an old Felix process still ran", err)
	case <-time.After(600 * time.Millisecond):
	}
	felixProc(t, proc, 102)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("did not see Felix restart")
	}
	if _, err := felixPIDs(t.TempDir()); err == nil {
		t.Error("no Felix process visible is no error")
	}
}

// TestServeCooperationMeasuresOffload: with a peer to verify against, the
// offload change the cooperation makes is measured like any other change
// made to raise throughput; when it measured slower it is undone and
// held, and that is not taken for Felix switching it off.
func TestServeCooperationMeasuresOffload(t *testing.T) {
	n := newCoopNode(t)
	calls := 0
	n.rem.Verify = &daemon.Verify{Peer: "10.0.0.2", Measure: func(ctx context.Context, peer string) (detect.PeerMeasurement, error) {
		calls++
		bps := 9e9
		if n.et.get(detect.FeatureTxChecksumGeneric) {
			bps = 1e8 // offload on: the path collapsed
		}
		return detect.PeerMeasurement{Peer: "n2", Address: peer, Device: "vxlan.calico", At: n.now, Cases: []detect.PeerCase{
			{Name: detect.PeerCaseHost, Direction: detect.PeerSend, BitsPerSecond: 10e9},
			{Name: detect.PeerCaseTunnel, Direction: detect.PeerSend, BitsPerSecond: bps},
		}}, nil
	}}
	n.cycle(t)
	felixProc(t, n.proc, 200)
	n.cycle(t)
	if calls != 2 {
		t.Fatalf("the offload change was measured %d times; want before and after", calls)
	}
	if n.et.get(detect.FeatureTxChecksumGeneric) {
		t.Fatal("offload left on although it measured slower")
	}
	if len(n.tuner.Holds()) != 1 {
		t.Fatalf("holds %+v; want the offload change held", n.tuner.Holds())
	}
	n.now = n.now.Add(10 * time.Second)
	if c := n.cycle(t); len(c) != 0 {
		t.Fatalf("conflicts %+v: the measured undo taken for Felix fighting the override", c)
	}
}
