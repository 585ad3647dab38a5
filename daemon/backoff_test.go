package daemon

import (
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

func offFinding(dev string, owner *detect.Owner) rules.Finding {
	return rules.Finding{
		Rule: rules.TunnelTxChecksumOff, Severity: rules.Warning, Subject: dev, Owner: owner,
		Fix: rules.Fix{Auto: true, Command: "ethtool -K " + dev + " tx-checksum-ip-generic on"},
	}
}

// TestBackoffGivesUp drives a reverter that undoes every fix: nodetune
// applies once, re-applies Max times, then stops and reports a conflict.
func TestBackoffGivesUp(t *testing.T) {
	felix := &detect.Owner{Name: detect.OwnerFelix, DurableFix: detect.FelixOverride}
	c := newConflicts(Backoff{Max: 3, Window: 10 * time.Minute})
	f := offFinding("vxlan.calico", felix)
	now := time.Unix(1000, 0)
	applies, reverts := 0, 0
	var last review
	for i := range 20 {
		now = now.Add(10 * time.Second)
		last = c.review([]rules.Finding{f}, now)
		reverts += len(last.reverted)
		if len(last.fix) == 1 {
			applies++
			c.fixed(f) // the fix took; the next review sees it undone
		}
		if i == 0 && applies != 1 {
			t.Fatalf("first cycle: want one apply, got %d", applies)
		}
	}
	if applies != 4 {
		t.Errorf("applies = %d, want 1 first apply + 3 re-applies", applies)
	}
	if reverts != 4 {
		t.Errorf("reverts seen = %d, want 4 (the fourth makes nodetune give up)", reverts)
	}
	if len(last.conflicts) != 1 {
		t.Fatalf("conflict findings = %d, want 1", len(last.conflicts))
	}
	cf := last.conflicts[0]
	if cf.Rule != rules.RemediationConflict || cf.Subject != "vxlan.calico" || cf.Owner != felix {
		t.Errorf("conflict finding = %+v", cf)
	}

	// The owner fixes it itself: the finding goes, and after a whole
	// window without it nodetune manages the setting again.
	now = now.Add(time.Minute)
	if r := c.review(nil, now); len(r.conflicts) != 0 || len(r.fix) != 0 {
		t.Errorf("finding gone: want no conflict and no fix, got %+v", r)
	}
	now = now.Add(10 * time.Minute)
	c.review(nil, now)
	if r := c.review([]rules.Finding{f}, now.Add(time.Second)); len(r.fix) != 1 || len(r.conflicts) != 0 {
		t.Errorf("after a quiet window the setting should be managed again, got %+v", r)
	}
}

// TestBackoffSlowReverts: reverts spread wider than the window never add
// up to a conflict.
func TestBackoffSlowReverts(t *testing.T) {
	c := newConflicts(Backoff{Max: 2, Window: time.Minute})
	f := offFinding("vxlan0", nil)
	now := time.Unix(0, 0)
	for range 10 {
		now = now.Add(45 * time.Second)
		r := c.review([]rules.Finding{f}, now)
		if len(r.fix) != 1 || len(r.conflicts) != 0 {
			t.Fatalf("at %s: want a fix and no conflict, got %+v", now, r)
		}
		c.fixed(f)
	}
}

// TestBackoffFailedApplyIsNoRevert: a fix that never took is retried, and
// never counted as another agent's revert.
func TestBackoffFailedApplyIsNoRevert(t *testing.T) {
	c := newConflicts(Backoff{Max: 1, Window: time.Hour})
	f := offFinding("vxlan0", nil)
	now := time.Unix(0, 0)
	for range 5 {
		now = now.Add(time.Second)
		r := c.review([]rules.Finding{f}, now)
		if len(r.fix) != 1 || len(r.reverted) != 0 || len(r.conflicts) != 0 {
			t.Fatalf("want a retry, no revert, got %+v", r)
		}
	}
	manual := f
	manual.Fix.Auto = false
	if r := c.review([]rules.Finding{manual}, now); len(r.fix) != 0 {
		t.Errorf("a manual finding must never be fixed, got %+v", r)
	}
}
