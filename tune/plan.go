package tune

import (
	"slices"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// PlanOptions narrow a plan and override its owner check.
type PlanOptions struct {
	// Rules limits the plan to findings of these rule IDs; empty means all.
	Rules []string
	// Force plans changes to settings another agent owns instead of
	// refusing them, and turns tx checksum offload back on where nodetune
	// turned it off for bad checksums (see Claims). It overrides nothing
	// else.
	Force bool
	// Claims are the journal entries nodetune still claims; Tuner.Plan
	// fills them in. Propose never turns tx checksum offload back on where
	// one of them turned it off for tunnel-tx-checksum-unsafe: the quiet
	// window that follows is no evidence that the bug went away, and
	// turning it on again would flip-flop.
	Claims []Entry
	// Exclude leaves out findings of these rule IDs.
	Exclude []string
	// Holds are the settings the user rolled back; Tuner.Plan fills them
	// in. A change to one is refused as held (ErrHeld), whatever Force says.
	Holds []Hold
	// Release names the rules (or "all") whose holds Tuner.Plan leaves
	// out, for a plan made before Tuner.Release lifts them.
	Release []string
}

// Propose turns the auto-fixable findings of s into a plan to show: it
// does no I/O and knows the built-in kinds only. A change is refused, with
// its reason, when it is outside the allowlist, when the kernel or the
// evidence in s makes it unsafe, when it is not one bounded step, or when
// another agent owns the setting and o.Force is off. Its plan cannot be
// applied: Apply takes only a plan from Tuner.Plan, which consults the
// journal's holds and claims.
func Propose(s *detect.Snapshot, findings []rules.Finding, o PlanOptions) Plan {
	return propose(HostKinds(nil), s, findings, o)
}

// Propose is the package's Propose over the kinds ks, for a preview on a
// System with kinds beyond the built-in ones (KindsOf). Its plan cannot be
// applied either.
func (ks Kinds) Propose(s *detect.Snapshot, findings []rules.Finding, o PlanOptions) Plan {
	return propose(ks, s, findings, o)
}

// propose is Propose over kinds.
func propose(kinds Kinds, s *detect.Snapshot, findings []rules.Finding, o PlanOptions) Plan {
	p := Plan{Changes: []Change{}}
	planned := map[Key]string{}
	for _, f := range findings {
		if !f.Fix.Auto || (len(o.Rules) > 0 && !slices.Contains(o.Rules, f.Rule)) || slices.Contains(o.Exclude, f.Rule) {
			continue
		}
		for _, rc := range f.Fix.Changes {
			c := Change{
				Key:  rc.Key(),
				To:   rc.Value,
				Rule: f.Rule, Subject: f.Subject, Why: f.Summary, Owner: f.Owner,
			}
			r := vet(kinds, s, &c)
			if !r.Refused() {
				r = heldReason(c, o.Holds)
				c.Held = r.Refused()
			}
			if !r.Refused() && !o.Force {
				r = keptOff(c, o.Claims)
			}
			if !r.Refused() && c.Owner != nil {
				if why := ownedApart(c.kind); why != "" {
					c.Owner = nil // the finding's owner owns the device, not this setting
					c.Notes = append(c.Notes, why)
				}
			}
			if !r.Refused() && c.Owner != nil && !o.Force {
				if why, ok := cooperates(kinds, s, c, o.Claims); ok {
					c.Notes = append(c.Notes, why)
				} else {
					r = refuse(ReasonOwner, "%s owns this setting: %s. nodetune does not fight it (--force overrides); the durable fix: %s",
						c.Owner.Name, c.Owner.Why, c.Owner.DurableFix)
				}
			}
			if to, dup := planned[c.Key]; dup {
				if to == c.To {
					continue // two findings, one write
				}
				r = refuse(ReasonDuplicate, "another finding already plans %s for %s", to, c.Key)
			}
			c.Refused, c.Reason = r.Why, r.Reason
			if !r.Refused() {
				planned[c.Key] = c.To
				c.vetted = true
			}
			p.Changes = append(p.Changes, c)
		}
	}
	return p
}

// vet checks c against its kind's allowlist, bounds and safety gates, and
// fills c.From (and c.Notes) from s.
func vet(kinds Kinds, s *detect.Snapshot, c *Change) Refusal {
	kind, err := kinds.Lookup(c.Kind)
	if err != nil {
		return refuse(ReasonAllowlist, "change kind %q is not on nodetune's allowlist", c.Kind)
	}
	c.kind = kind
	return kind.Vet(s, c)
}

// keptOff refuses c, turning tx checksum offload back on, because
// nodetune turned it off on that device for tunnel-tx-checksum-unsafe and
// still claims that change.
func keptOff(c Change, claims []Entry) Refusal {
	for _, e := range claims {
		if e.Key == c.Key && e.Rule == rules.TunnelTxChecksumUnsafe && e.To == off && c.To == on && e.Open() {
			return refuse(ReasonKeptOff, "nodetune turned %s off on %s for %s (journal entry %d, %s) because bad UDP checksums arrived while it was on; "+
				"a quiet window since is no proof the bug is gone, so it stays off. To allow it again: `nodetune rollback` (which undoes and closes that entry), or --force",
				c.Setting, c.Target, rules.TunnelTxChecksumUnsafe, e.ID, e.At.Format(time.RFC3339))
		}
	}
	return Refusal{}
}

// apartOwned is a Kind whose settings have no owner but themselves, even
// when the finding they fix names one: the owner of a device is not the
// owner of the object that configures that owner.
type apartOwned interface {
	OwnedApart() string
}

// ownedApart says why the finding's owner does not own a setting of kind,
// or "".
func ownedApart(kind Kind) string {
	if a, ok := kind.(apartOwned); ok {
		return a.OwnedApart()
	}
	return ""
}

// cooperator is a Kind whose change, once journaled and in place, makes the
// owner of another setting stop fighting a change to it (Felix, told by
// its FelixConfiguration that offload is not broken, leaves the device
// alone). It lets that change past the owner gate only then.
type cooperator interface {
	Cooperates(s *detect.Snapshot, c Change, claims []Entry) (string, bool)
}

// cooperates reports whether one of kinds vouches, from s and the
// journal's claims, that c's owner no longer fights it, and says why.
func cooperates(kinds Kinds, s *detect.Snapshot, c Change, claims []Entry) (string, bool) {
	for _, k := range kinds {
		if co, ok := k.(cooperator); ok {
			if why, ok := co.Cooperates(s, c, claims); ok {
				return why, true
			}
		}
	}
	return "", false
}
