package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/probes"
	"github.com/nodetune/nodetune/rules"
)

// recorder is a fake output: it keeps everything the daemon hands it, in
// order, and counts it as the exporter's metrics would.
type recorder struct {
	mu     sync.Mutex
	events []string // "publish" or "remediated", in the order received
	cycles []*Cycle
	steps  []*Remediation
}

func (r *recorder) Publish(c *Cycle) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "publish")
	r.cycles = append(r.cycles, c)
}

func (r *recorder) Remediated(s *Remediation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "remediated")
	r.steps = append(r.steps, s)
}

// counter is what the exporter would report for the metric name, its
// labels in the order of their names; -1 when it would report no series.
func counter(t *testing.T, r *recorder, name string, labels ...string) float64 {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	match := func(values ...string) bool {
		for i, l := range labels {
			if values[i] != l {
				return false
			}
		}
		return true
	}
	var state *RemediationState
	n, found := 0.0, false
	for _, s := range r.steps {
		if s.State != nil {
			state = s.State
		}
		switch name {
		case "nodetune_remediations_total":
			for _, o := range s.Outcomes {
				if found = true; match(string(o.Action), string(o.Result), o.Rule) {
					n++
				}
			}
		case "nodetune_remediation_conflicts_total":
			for _, h := range s.Reverted {
				if found = true; match(h.Rule, h.Subject) {
					n++
				}
			}
		}
	}
	switch {
	case name == "nodetune_remediations_total" || name == "nodetune_remediation_conflicts_total":
		if !found {
			return -1
		}
		return n
	case state == nil:
		return -1
	case name == "nodetune_journal_ok":
		if state.JournalOK {
			return 1
		}
		return 0
	case name == "nodetune_remediation_settings_owned":
		return float64(state.Owned)
	case name == "nodetune_remediation_settings_given_up":
		return float64(state.GivenUp)
	case name == "nodetune_remediation_last_success_timestamp_seconds" && !state.LastSuccess.IsZero():
		return float64(state.LastSuccess.UnixNano()) / 1e9
	}
	t.Fatalf("the recorder does not count %s", name)
	return -1
}

// series is how many series of nodetune_remediations_total there would be.
func series(r *recorder) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[[3]string]bool{}
	for _, s := range r.steps {
		for _, o := range s.Outcomes {
			seen[[3]string{o.Rule, string(o.Action), string(o.Result)}] = true
		}
	}
	return len(seen)
}

// TestOutputsReceiveEachCycleAndRemediation: an output receives the
// reconcile at start, then each cycle's remediation step before that
// cycle's result, in order, with every outcome and revert; nothing polls.
func TestOutputsReceiveEachCycleAndRemediation(t *testing.T) {
	c := &clock{time.Unix(1e9, 0)}
	h := newFakeHost(c.now)
	h.set(offloadChange, "off")
	rec := &recorder{}
	d, err := New(Options{Host: &probes.Host{}, Outputs: []Publisher{rec}, Interval: time.Minute, Window: time.Second,
		Remediator: h, Backoff: Backoff{Max: 3, Window: 10 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	d.now = c.now
	d.record("reconciled the journal", func(context.Context) ([]Outcome, error) {
		return []Outcome{{Rule: rules.TunnelTxChecksumOff, Subject: "vxlan.calico", Action: "reconcile", Result: "closed", Ok: true}}, nil
	})
	s := &detect.Snapshot{}
	for i := range 2 {
		res := rules.Result{Findings: offloadOff(h, nil)}
		res.Findings = append(res.Findings, d.remediate(context.Background(), s, res.Findings)...)
		d.publish(&Cycle{Snapshot: s, Result: res})
		if i == 0 {
			h.set(offloadChange, "off") // someone undoes the fix
		}
		c.advance(10 * time.Second)
	}
	if diff := cmp.Diff([]string{"remediated", "remediated", "publish", "remediated", "publish"}, rec.events); diff != "" {
		t.Fatalf("order of what the output received (-want +got):\n%s", diff)
	}
	var got []string
	for _, st := range rec.steps {
		for _, r := range st.Reverted { // found before the cycle's apply
			got = append(got, "reverted "+r.Subject)
		}
		for _, o := range st.Outcomes {
			got = append(got, string(o.Action)+" "+string(o.Result))
		}
	}
	want := []string{"reconcile closed", "apply verified", "reverted vxlan.calico", "apply verified"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("remediation steps received (-want +got):\n%s", diff)
	}
	if rec.steps[0].State != nil || rec.steps[2].State == nil || rec.steps[2].State.Owned != 1 {
		t.Errorf("remediation states: reconcile %+v, last cycle %+v", rec.steps[0].State, rec.steps[2].State)
	}
	if len(rec.cycles) != 2 || rec.cycles[1].Snapshot != s {
		t.Errorf("cycles received: %+v", rec.cycles)
	}
}

// TestPausedAppliesNothing: while Options.Paused says so, the daemon
// applies no fix and hands its outputs no outcome.
func TestPausedAppliesNothing(t *testing.T) {
	c := &clock{time.Unix(1e9, 0)}
	h := newFakeHost(c.now)
	h.set(offloadChange, "off")
	d, rec := newTestDaemon(t, h, c, "")
	paused := true
	d.opt.Paused = func() bool { return paused }
	d.remediate(context.Background(), &detect.Snapshot{}, offloadOff(h, nil))
	if len(h.applied) != 0 || counter(t, rec, "nodetune_remediations_total") != -1 {
		t.Errorf("paused: %d applies, %v outcomes", len(h.applied), counter(t, rec, "nodetune_remediations_total"))
	}
	paused = false
	c.advance(10 * time.Second)
	d.remediate(context.Background(), &detect.Snapshot{}, offloadOff(h, nil))
	if len(h.applied) != 1 {
		t.Errorf("resumed: %d applies, want 1", len(h.applied))
	}
}

// noLinks is a netlink without devices, and noEthtool an ethtool that
// supports nothing: the fixture node's files are all the daemon reads.
type (
	noLinks   struct{}
	noEthtool struct{}
)

func (noLinks) LinkList() ([]netlink.Link, error) { return nil, nil }
func (noLinks) RouteList(netlink.Link, int) ([]netlink.Route, error) {
	return nil, nil
}
func (noEthtool) FeaturesWithState(string) (map[string]ethtool.FeatureState, error) {
	return nil, fmt.Errorf("fake ethtool: %w", detect.ErrNotSupported)
}

// TestRunPublishesEachCycle: a running daemon hands its output every
// cycle, each after that cycle's remediation step, with no exporter.
func TestRunPublishesEachCycle(t *testing.T) {
	dir := filepath.Join("..", "testdata", "nodes", "busy-node")
	host, err := probes.NewHost(probes.Paths{ProcFS: filepath.Join(dir, "proc"), SysFS: filepath.Join(dir, "sys"), RootFS: dir}, noLinks{}, noEthtool{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	d, err := New(Options{Host: host, Outputs: []Publisher{rec}, Interval: 20 * time.Millisecond,
		Window: time.Millisecond, Remediator: newFakeHost(time.Now)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec.mu.Lock()
		n := len(rec.cycles)
		rec.mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d cycles published in 10 s at a 20 ms interval", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, e := range rec.events {
		if e == "publish" && (i == 0 || rec.events[i-1] != "remediated") {
			t.Fatalf("a cycle published without its remediation step before it: %v", rec.events)
		}
	}
	for i := 1; i < len(rec.cycles); i++ {
		if !rec.cycles[i].Snapshot.Taken.After(rec.cycles[i-1].Snapshot.Taken) {
			t.Errorf("cycle %d taken at %v, not after cycle %d at %v", i, rec.cycles[i].Snapshot.Taken, i-1, rec.cycles[i-1].Snapshot.Taken)
		}
	}
}
