package daemon

import (
	"cmp"
	"slices"
	"time"

	"github.com/nodetune/nodetune/rules"
)

// Backoff bounds how hard nodetune fights another agent over a setting.
// After a fix is undone more than Max times within Window, nodetune stops
// re-applying it and raises a remediation-conflict finding instead; the
// setting is managed again once its finding has been gone for a Window.
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

// given is a setting nodetune stopped managing.
type given struct {
	conflict rules.Conflict
	// lastSeen is when its finding was last present.
	lastSeen time.Time
}

// conflicts tracks fixes nodetune made and how often they were undone. It
// has no clock of its own and does no I/O; the serve loop drives it.
type conflicts struct {
	policy  Backoff
	applied map[key]bool
	reverts map[key][]time.Time
	given   map[key]*given
}

func newConflicts(p Backoff) *conflicts {
	return &conflicts{policy: p, applied: map[key]bool{}, reverts: map[key][]time.Time{}, given: map[key]*given{}}
}

// review is the verdict of one cycle: which findings to fix, which fixes
// were undone since the last cycle, and the conflict findings to report.
type review struct {
	fix       []rules.Finding
	reverted  []rules.Finding
	conflicts []rules.Finding
	// gaveUp lists the settings given up on in this very cycle.
	gaveUp []rules.Finding
}

// review sorts the auto-fixable findings of a cycle at time now. A finding
// whose fix nodetune applied successfully and which is back is a revert.
func (c *conflicts) review(findings []rules.Finding, now time.Time) review {
	var r review
	present := map[key]bool{}
	for _, f := range findings {
		if !f.Fix.Auto {
			continue
		}
		k := keyOf(f)
		present[k] = true
		if g, ok := c.given[k]; ok {
			g.lastSeen = now
			g.conflict.Finding = f
			continue
		}
		if c.applied[k] {
			delete(c.applied, k)
			r.reverted = append(r.reverted, f)
			recent := slices.DeleteFunc(append(c.reverts[k], now), func(t time.Time) bool { return now.Sub(t) >= c.policy.Window })
			c.reverts[k] = recent
			if len(recent) > c.policy.Max {
				c.given[k] = &given{conflict: rules.Conflict{Finding: f, Reverts: len(recent), Window: c.policy.Window}, lastSeen: now}
				delete(c.reverts, k)
				r.gaveUp = append(r.gaveUp, f)
				continue
			}
		}
		r.fix = append(r.fix, f)
	}
	for k, g := range c.given {
		if !present[k] && now.Sub(g.lastSeen) >= c.policy.Window {
			delete(c.given, k)
			continue
		}
		if present[k] {
			r.conflicts = append(r.conflicts, rules.ConflictFinding(g.conflict))
		}
	}
	slices.SortFunc(r.conflicts, func(a, b rules.Finding) int {
		return cmp.Or(cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Summary, b.Summary))
	})
	return r
}

// fixed records that the fix for f was applied and read back.
func (c *conflicts) fixed(f rules.Finding) { c.applied[keyOf(f)] = true }

// managing reports how many settings nodetune has fixed and still watches.
func (c *conflicts) managing() int { return len(c.applied) }
