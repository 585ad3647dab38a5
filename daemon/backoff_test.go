package daemon

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// undone is a holding of journal entry id for the offload fix on dev,
// changed by someone else.
func undone(id int64, dev string) Holding {
	c := offloadChange
	c.Target = dev
	return Holding{Entry: id, Rule: rules.TunnelTxChecksumOff, Subject: dev, Change: c, Live: "off", Undone: true}
}

func offFinding(dev string) rules.Finding {
	c := offloadChange
	c.Target = dev
	return rules.Finding{Rule: rules.TunnelTxChecksumOff, Severity: rules.Warning, Subject: dev,
		Fix: rules.Fix{Auto: true, Changes: []rules.Change{c}}}
}

// TestBackoffSlowReverts: reverts spread wider than the window never add
// up to a conflict.
func TestBackoffSlowReverts(t *testing.T) {
	c := newConflicts(Backoff{Max: 2, Window: time.Minute})
	f := offFinding("vxlan0")
	now := time.Unix(0, 0)
	for i := range 10 {
		now = now.Add(45 * time.Second)
		r := c.review([]rules.Finding{f}, []Holding{undone(int64(i+1), "vxlan0")}, now)
		if len(r.fix) != 1 || len(r.reverted) != 1 || len(r.conflicts) != 0 {
			t.Fatalf("at %s: want a revert, a fix and no conflict, got %+v", now, r)
		}
	}
}

// TestBackoffCountsEachEntryOnce: an undone entry seen in many cycles is one
// revert; the next entry undone is another.
func TestBackoffCountsEachEntryOnce(t *testing.T) {
	c := newConflicts(Backoff{Max: 1, Window: time.Hour})
	now := time.Unix(0, 0)
	for range 5 {
		now = now.Add(time.Second)
		c.review(nil, []Holding{undone(7, "vxlan0")}, now)
	}
	if got := len(c.reverts[key{rules.TunnelTxChecksumOff, "vxlan0"}]); got != 1 {
		t.Errorf("reverts = %d, want 1", got)
	}
	r := c.review([]rules.Finding{offFinding("vxlan0")}, []Holding{undone(9, "vxlan0")}, now.Add(time.Second))
	if len(r.gaveUp) != 1 || len(r.conflicts) != 1 || len(r.fix) != 0 {
		t.Errorf("second revert over Max=1: want a give-up and its conflict, got %+v", r)
	}
	manual := offFinding("vxlan1")
	manual.Fix.Auto = false
	if r := c.review([]rules.Finding{manual}, nil, now); len(r.fix) != 0 {
		t.Errorf("a manual finding must never be fixed, got %+v", r)
	}
}

// TestBackoffReleasesAfterQuietWindow: once the owner fixes it itself and
// the finding stays gone for a whole window, the setting is managed again.
func TestBackoffReleasesAfterQuietWindow(t *testing.T) {
	c := newConflicts(Backoff{Max: 0, Window: 10 * time.Minute})
	f := offFinding("vxlan.calico")
	now := time.Unix(1000, 0)
	if r := c.review([]rules.Finding{f}, []Holding{undone(1, "vxlan.calico")}, now); len(r.conflicts) != 1 {
		t.Fatalf("want a conflict, got %+v", r)
	}
	now = now.Add(time.Minute)
	if r := c.review(nil, nil, now); len(r.conflicts) != 0 || len(r.fix) != 0 {
		t.Errorf("finding gone: want no conflict and no fix, got %+v", r)
	}
	now = now.Add(10 * time.Minute)
	c.review(nil, nil, now)
	if r := c.review([]rules.Finding{f}, nil, now.Add(time.Second)); len(r.fix) != 1 || len(r.conflicts) != 0 {
		t.Errorf("after a quiet window the setting should be managed again, got %+v", r)
	}
}

// TestBackoffSurvivesRestart: a restarted agent (a crash loop, an upgrade)
// keeps counting where the last one stopped and stays off a setting it gave
// up on, instead of fighting Felix afresh.
func TestBackoffSurvivesRestart(t *testing.T) {
	c := &clock{time.Unix(1e9, 0)}
	h := newFakeHost(c.now)
	h.set(offloadChange, "off")
	state := filepath.Join(t.TempDir(), BackoffFile)
	felix := &detect.Owner{Name: detect.OwnerFelix}
	cycle := func(d *Daemon) []rules.Finding {
		defer c.advance(10 * time.Second)
		out := d.remediate(context.Background(), &detect.Snapshot{}, offloadOff(h, felix))
		h.set(offloadChange, "off")
		return out
	}
	// The first agent applies and sees 2 reverts, then dies.
	d1, _ := newTestDaemon(t, h, c, state)
	for range 3 {
		cycle(d1)
	}
	// The second sees reverts 3 and 4, and gives up at the fourth.
	d2, _ := newTestDaemon(t, h, c, state)
	var conflicts []rules.Finding
	for range 3 {
		conflicts = cycle(d2)
	}
	if len(h.applied) != 4 || len(conflicts) != 1 {
		t.Fatalf("across a restart: %d applies and %d conflict findings; want 4 and 1", len(h.applied), len(conflicts))
	}
	// The third starts given up: no write, the conflict reported at once.
	d3, exp := newTestDaemon(t, h, c, state)
	if conflicts := cycle(d3); len(conflicts) != 1 || conflicts[0].Owner != felix || len(h.applied) != 4 {
		t.Errorf("after a restart given up: %d applies, conflicts %+v", len(h.applied), conflicts)
	}
	if got := counter(t, exp, "nodetune_remediation_settings_given_up"); got != 1 {
		t.Errorf("settings given up after a restart = %v, want 1", got)
	}
	if got := counter(t, exp, "nodetune_remediation_conflicts_total"); got != -1 {
		t.Errorf("a restart recounted %v reverts it had counted", got)
	}
}

// TestBackoffStateFile: the state round-trips, and a damaged file starts the
// back-off afresh rather than stopping the agent.
func TestBackoffStateFile(t *testing.T) {
	c := newConflicts(DefaultBackoff)
	now := time.Unix(1e9, 0).UTC()
	c.review([]rules.Finding{offFinding("a")}, []Holding{undone(3, "a")}, now)
	c.given[key{"r", "s"}] = &given{conflict: conflictOf(key{"r", "s"}, 4, DefaultBackoff.Window), lastSeen: now}
	path := filepath.Join(t.TempDir(), BackoffFile)
	if err := c.save(path); err != nil {
		t.Fatal(err)
	}
	if c.dirty {
		t.Error("still dirty after saving")
	}
	back := newConflicts(DefaultBackoff)
	if err := back.load(path); err != nil {
		t.Fatal(err)
	}
	opts := cmp.AllowUnexported(conflicts{}, given{}, setting{}, key{})
	if diff := cmp.Diff(c, back, opts); diff != "" {
		t.Errorf("state after a round trip (-saved +loaded):\n%s", diff)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v (%v), want 0600", fi.Mode(), err)
	}
	if err := os.WriteFile(path, []byte(`{"format":"nodetune-backoff","vers`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := newConflicts(DefaultBackoff).load(path); err == nil {
		t.Error("a torn state file loaded without an error")
	}
	if err := newConflicts(DefaultBackoff).load(filepath.Join(t.TempDir(), "none")); err != nil {
		t.Errorf("a missing state file is a fresh start, got %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left beside the state: %v", entries)
	}
}

// FuzzBackoffState: any bytes either load or are refused; what loads saves
// and loads again to the same state.
func FuzzBackoffState(f *testing.F) {
	c := newConflicts(DefaultBackoff)
	c.review([]rules.Finding{offFinding("a")}, []Holding{undone(3, "a")}, time.Unix(1e9, 0).UTC())
	seed, _ := c.marshal()
	f.Add(seed)
	f.Add([]byte(`{"format":"nodetune-backoff","version":1,"given":[{"rule":"r","subject":"s","reverts":4,"last_seen":"2024-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"format":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a := newConflicts(DefaultBackoff)
		if a.unmarshal(data) != nil {
			return
		}
		out, err := a.marshal()
		if err != nil {
			t.Fatal(err)
		}
		b := newConflicts(DefaultBackoff)
		if err := b.unmarshal(out); err != nil {
			t.Fatalf("a saved state does not load: %v\n%s", err, out)
		}
		if len(a.given) != len(b.given) || len(a.counted) != len(b.counted) || len(a.reverts) != len(b.reverts) {
			t.Errorf("round trip changed the state:\n%s", out)
		}
	})
}
