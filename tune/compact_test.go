package tune

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

func journalLines(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// TestFailingFixKeepsTheJournalBounded: a fix that always fails (no
// CAP_NET_ADMIN: the write returns EPERM) journals an intent and a failure
// each time it is tried. Closed entries are compacted, so however often it
// is tried the journal stays bounded, and the open entries, with their
// whole history, stay.
func TestFailingFixKeepsTheJournalBounded(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	dir := t.TempDir()
	sys := &flakySystem{System: n.host, fail: func(k Key, v string) error {
		if k.Kind == rules.ChangeFeature {
			return syscall.EPERM
		}
		return nil
	}}
	tu := openTuner(t, dir, sys)
	tu.keepClosed = 5
	// One open entry, which must survive every compaction.
	s := n.snapshot(t)
	s.Softnet.Delta.TimeSqueezed = 5
	if out := tu.applyProposed(ctx, Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.SoftnetDrops}})); len(out) != 1 || out[0].Result != Verified {
		t.Fatalf("apply: %v", out)
	}
	s = loadedSnapshot(t, n)
	p := Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
	for i := range 200 {
		out := tu.applyProposed(ctx, p)
		if len(out) != 1 || out[0].Result != Failed || !errors.Is(out[0].Err, syscall.EPERM) {
			t.Fatalf("try %d: %v", i, out)
		}
	}
	// header + 3 records of the open entry + at most 2*keep closed
	// entries of 2 records each.
	if got, limit := journalLines(t, dir), 1+3+2*compactFactor*tu.keepClosed+2; got > limit {
		t.Errorf("the journal has %d lines after 200 failed tries, want at most %d", got, limit)
	}
	tu.Close()
	tu = openTuner(t, dir, n.host)
	if e := tu.Entries(); len(e) != 1 || e[0].Key.Target != SysctlBudget || e[0].State != evVerified {
		t.Fatalf("open entries after compaction: %+v", e)
	}
	if out := tu.Rollback(ctx, false); len(out) != 1 || out[0].Result != Restored {
		t.Errorf("rollback after compaction: %v", out)
	}
	if got := readFile(t, filepath.Join(n.proc, "sys/net/core/netdev_budget")); got != "300" {
		t.Errorf("netdev_budget = %s after rollback, want 300", got)
	}
}

// TestCompactionKilledHalfway: a process killed while compacting leaves
// its temporary file beside the journal, and the journal as it was (the
// rename is the commit). The next writer opens the journal whole and
// removes the leftover.
func TestCompactionKilledHalfway(t *testing.T) {
	dir, before := writeJournal(t)
	stale := filepath.Join(dir, "."+JournalFile+".123456")
	if err := os.WriteFile(stale, before[:len(before)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := openJournal(dir)
	if err != nil {
		t.Fatalf("opening after a killed compaction: %v", err)
	}
	defer j.close()
	if len(j.open()) != 1 {
		t.Errorf("entries: %+v", j.open())
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the leftover temporary file is still there: %v", err)
	}
}

// TestHoldAfterRollback: a change the user rolled back is held: plans
// refuse it with a typed refusal (ErrHeld), even with Force, across
// processes, and through compaction; a release lifts the hold.
func TestHoldAfterRollback(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	dir := t.TempDir()
	tu := openTuner(t, dir, n.host)
	tu.keepClosed = 1
	s := n.snapshot(t)
	s.Softnet.Delta.TimeSqueezed = 5
	findings := rules.Evaluate(s, rules.DefaultConfig()).Findings
	opts := PlanOptions{Rules: []string{rules.SoftnetDrops}}
	if out := tu.Apply(ctx, tu.Plan(s, findings, opts)); len(out) != 1 || out[0].Result != Verified {
		t.Fatalf("apply: %v", out)
	}
	rb := tu.Rollback(ctx, false)
	holds, err := tu.Hold(rb)
	if err != nil || len(holds) != 1 || holds[0].Rule != rules.SoftnetDrops {
		t.Fatalf("hold: %+v, %v", holds, err)
	}
	tu.Close()

	tu = openTuner(t, dir, n.host)
	tu.keepClosed = 1
	s = n.snapshot(t)
	s.Softnet.Delta.TimeSqueezed = 5
	for _, force := range []bool{false, true} {
		p := tu.Plan(s, findings, PlanOptions{Rules: opts.Rules, Force: force})
		if len(p.Approved()) != 0 || len(p.Refusals()) != 1 || !p.Refusals()[0].Held {
			t.Fatalf("plan after rollback (force %t): %+v", force, p)
		}
		out := tu.applyProposed(ctx, p)
		if len(out) != 1 || out[0].Result != Refused || !errors.Is(out[0].Err, ErrHeld) {
			t.Fatalf("apply after rollback: %v", out)
		}
	}
	// Other changes are not held, and compaction keeps the hold.
	s.Tunnels.Devices[0].Features.State[detect.FeatureTxChecksumGeneric] = false
	n.et.setRequested(t, "vxlan0", map[string]bool{detect.FeatureTxChecksumGeneric: false})
	for range 3 {
		tu.Apply(ctx, tu.Plan(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}}))
		tu.Rollback(ctx, false)
	}
	if h := tu.Holds(); len(h) != 1 || h[0].Rule != rules.SoftnetDrops {
		t.Fatalf("holds after compaction: %+v", h)
	}
	released, err := tu.Release([]string{"all"})
	if err != nil || len(released) != 1 {
		t.Fatalf("release: %+v, %v", released, err)
	}
	s = n.snapshot(t)
	s.Softnet.Delta.TimeSqueezed = 5
	if p := tu.Plan(s, findings, opts); len(p.Approved()) != 1 {
		t.Errorf("plan after release: %+v", p)
	}
}
