package daemon

import (
	"cmp"
	"slices"
	"time"

	"github.com/nodetune/nodetune/rules"
)

// Backoff bounds how hard nodetune fights another agent over a setting,
// and how often it tries a fix that fails.
// After a fix is undone more than Max times within Window, nodetune stops
// re-applying it and raises a remediation-conflict finding instead; the
// setting is managed again once its finding has been gone for a Window.
// A sysctl is also stepped at most once per Window, so a finding that
// persists after a step (drops that a larger backlog did not cure) does
// not double the value again every cycle. A fix that fails (no
// CAP_NET_ADMIN, a driver that refuses) is tried again only after
// Window/2^Max, a delay that doubles with each failure in a row up to
// Window, and is forgotten once it succeeds or its finding has been gone
// for a Window.
type Backoff struct {
	Max    int
	Window time.Duration
}

// DefaultBackoff re-applies a fix at most 3 times in 10 minutes. Felix
// re-asserts its choice about every 10 s, so it is caught in well under a
// minute, while a one-off revert by an admin or a driver reset is fixed.
var DefaultBackoff = Backoff{Max: 3, Window: 10 * time.Minute}

// key names one contested setting: a rule's finding on a subject.
type key struct{ rule, subject string }

func keyOf(f rules.Finding) key { return key{f.Rule, f.Subject} }

// setting names one setting on the host: the identity rules and tune share.
type setting = rules.SettingKey

func settingOf(c rules.Change) setting { return c.Key() }

// given is a setting nodetune stopped managing.
type given struct {
	conflict rules.Conflict
	// lastSeen is when its finding was last present.
	lastSeen time.Time
}

// conflicts tracks how often the fixes nodetune made were undone. What
// nodetune set, and whether it is still in place, comes from the journal
// each cycle (Holdings); conflicts only remembers what it has counted. It
// has no clock of its own and does no I/O; the serve loop drives it and
// persists it (state.go).
type conflicts struct {
	policy Backoff
	// counted is, per setting, the newest journal entry whose undoing was
	// already counted, so one revert is counted once however many cycles
	// see it.
	counted map[setting]int64
	reverts map[key][]time.Time
	given   map[key]*given
	// failing are the fixes whose last try failed.
	failing map[key]*failing
	// dirty is set when something worth persisting changed.
	dirty bool
}

// failing is a fix whose tries failed, Count times in a row.
type failing struct {
	Count int
	Last  time.Time
}

// retryDelay is how long after its n-th failure in a row a fix waits.
func (p Backoff) retryDelay(n int) time.Duration {
	d := p.Window >> min(p.Max, 30)
	for i := 1; i < n && d < p.Window; i++ {
		d *= 2
	}
	return max(min(d, p.Window), time.Second)
}

// failed records that the fix of k failed at now, and returns how long it
// now waits.
func (c *conflicts) failed(k key, now time.Time) time.Duration {
	f := c.failing[k]
	if f == nil {
		f = &failing{}
		c.failing[k] = f
	}
	f.Count++
	f.Last = now
	c.dirty = true
	return c.policy.retryDelay(f.Count)
}

// succeeded forgets the failures of k's fix.
func (c *conflicts) succeeded(k key) {
	if _, ok := c.failing[k]; ok {
		delete(c.failing, k)
		c.dirty = true
	}
}

func newConflicts(p Backoff) *conflicts {
	return &conflicts{policy: p, counted: map[setting]int64{}, reverts: map[key][]time.Time{}, given: map[key]*given{}, failing: map[key]*failing{}}
}

// review is the verdict of one cycle: which findings to fix, which fixes
// were undone since the last cycle, and the conflict findings to report.
type review struct {
	fix []rules.Finding
	// reverted are the settings found undone in this cycle, one per finding.
	reverted  []Holding
	conflicts []rules.Finding
	// gaveUp lists the settings given up on in this very cycle.
	gaveUp []key
	// waiting are findings whose sysctl was stepped less than a window ago.
	waiting []rules.Finding
	// retrying are findings whose fix failed and waits for its retry.
	retrying []rules.Finding
}

// review sorts the auto-fixable findings of a cycle at time now, given
// what nodetune holds. A revert is a value nodetune wrote and read back
// that is no longer there; a finding that persists while nodetune's value
// is in place is no revert (the fix did not cure it).
func (c *conflicts) review(findings []rules.Finding, held []Holding, now time.Time) review {
	var r review
	present := map[key]rules.Finding{}
	for _, f := range findings {
		if f.Fix.Auto {
			present[keyOf(f)] = f
		}
	}
	c.countReverts(&r, held, present, now)
	lastStep := make(map[setting]time.Time, len(held))
	for _, h := range held {
		if h.Stepwise {
			lastStep[settingOf(h.Change)] = h.At
		}
	}
	for _, f := range findings {
		if !f.Fix.Auto {
			continue
		}
		k := keyOf(f)
		if g, ok := c.given[k]; ok {
			// Not persisted for this alone: a restart that finds the
			// finding still there refreshes it at once.
			g.lastSeen = now
			g.conflict.Finding = f
			continue
		}
		if c.stepped(f, lastStep, now) {
			r.waiting = append(r.waiting, f)
			continue
		}
		if fl, ok := c.failing[k]; ok && now.Sub(fl.Last) < c.policy.retryDelay(fl.Count) {
			r.retrying = append(r.retrying, f)
			continue
		}
		r.fix = append(r.fix, f)
	}
	for k, fl := range c.failing {
		if _, isPresent := present[k]; !isPresent && now.Sub(fl.Last) >= c.policy.Window {
			delete(c.failing, k)
			c.dirty = true
		}
	}
	for k, g := range c.given {
		_, isPresent := present[k]
		if !isPresent && now.Sub(g.lastSeen) >= c.policy.Window {
			delete(c.given, k)
			c.dirty = true
			continue
		}
		if isPresent {
			r.conflicts = append(r.conflicts, rules.ConflictFinding(g.conflict))
		}
	}
	slices.SortFunc(r.conflicts, func(a, b rules.Finding) int {
		return cmp.Or(cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Summary, b.Summary))
	})
	return r
}

// countReverts counts each held setting whose verified value is gone, once
// per journal entry and once per finding in a cycle (turning tx checksum
// offload off also takes the segmentation features nodetune restored with
// it), and gives up on a finding undone more than Max times in a Window.
func (c *conflicts) countReverts(r *review, held []Holding, present map[key]rules.Finding, now time.Time) {
	seen := map[key]bool{}
	for _, h := range held {
		s := settingOf(h.Change)
		if !h.Undone || h.Entry <= c.counted[s] {
			continue
		}
		c.counted[s] = h.Entry
		c.dirty = true
		k := key{h.Rule, h.Subject}
		if seen[k] {
			continue
		}
		seen[k] = true
		r.reverted = append(r.reverted, h)
		if _, ok := c.given[k]; ok {
			continue
		}
		recent := slices.DeleteFunc(append(c.reverts[k], now), func(t time.Time) bool { return now.Sub(t) >= c.policy.Window })
		c.reverts[k] = recent
		if len(recent) <= c.policy.Max {
			continue
		}
		f, ok := present[k]
		if !ok {
			f = rules.Finding{Rule: h.Rule, Subject: h.Subject}
		}
		c.given[k] = &given{conflict: rules.Conflict{Finding: f, Reverts: len(recent), Window: c.policy.Window}, lastSeen: now}
		delete(c.reverts, k)
		r.gaveUp = append(r.gaveUp, k)
	}
}

// stepped reports whether f would step a setting (of a stepwise kind: a
// sysctl) that nodetune already stepped less than a Window ago: at most one
// step per setting per window. lastStep holds the stepwise settings only.
func (c *conflicts) stepped(f rules.Finding, lastStep map[setting]time.Time, now time.Time) bool {
	for _, ch := range f.Fix.Changes {
		if at, ok := lastStep[settingOf(ch)]; ok && now.Sub(at) < c.policy.Window {
			return true
		}
	}
	return false
}

// givenUp is how many settings nodetune has stopped managing.
func (c *conflicts) givenUp() int { return len(c.given) }
