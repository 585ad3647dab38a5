package tune

import (
	"fmt"
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

// Propose turns the auto-fixable findings of s into a plan. It does no I/O.
// A change is refused, with its reason, when it is outside the allowlist,
// when the kernel or the evidence in s makes it unsafe, when it is not one
// bounded step, or when another agent owns the setting and o.Force is off.
func Propose(s *detect.Snapshot, findings []rules.Finding, o PlanOptions) Plan {
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
			c.Refused = vet(s, &c)
			if c.Refused == "" {
				c.Refused = heldReason(c, o.Holds)
				c.Held = c.Refused != ""
			}
			if c.Refused == "" && !o.Force {
				c.Refused = keptOff(c, o.Claims)
			}
			if c.Refused == "" && c.Owner != nil && !o.Force {
				c.Refused = fmt.Sprintf("%s owns this setting: %s. nodetune does not fight it (--force overrides); the durable fix: %s",
					c.Owner.Name, c.Owner.Why, c.Owner.DurableFix)
			}
			if to, dup := planned[c.Key]; dup {
				if to == c.To {
					continue // two findings, one write
				}
				c.Refused = fmt.Sprintf("another finding already plans %s for %s", to, c.Key)
			}
			if c.Refused == "" {
				planned[c.Key] = c.To
				c.vetted = true
			}
			p.Changes = append(p.Changes, c)
		}
	}
	return p
}

// vet checks c against the allowlist, the bounds and the safety gates, and
// fills c.From (and c.Notes) from s. It returns why c is refused, or "".
func vet(s *detect.Snapshot, c *Change) string {
	switch c.Kind {
	case rules.ChangeFeature:
		return vetFeature(s, c)
	case rules.ChangeSysctl:
		return vetSysctl(s, c)
	case rules.ChangeRPS:
		return vetRPS(s, c)
	case rules.ChangeModule:
		return vetModule(s, c)
	}
	return fmt.Sprintf("change kind %q is not on nodetune's allowlist", c.Kind)
}

// keptOff says why c, turning tx checksum offload on, must not be made
// because nodetune turned it off on that device for tunnel-tx-checksum-unsafe
// and still claims that change; "" when it may.
func keptOff(c Change, claims []Entry) string {
	if c.Kind != rules.ChangeFeature || c.Setting != detect.FeatureTxChecksumGeneric || c.To != on {
		return ""
	}
	for _, e := range claims {
		if e.Key == c.Key && e.To == off && e.Rule == rules.TunnelTxChecksumUnsafe && e.Open() {
			return fmt.Sprintf("nodetune turned %s off on %s for %s (journal entry %d, %s) because bad UDP checksums arrived while it was on; "+
				"a quiet window since is no proof the bug is gone, so it stays off. To allow it again: `nodetune rollback` (which undoes and closes that entry), or --force",
				c.Setting, c.Target, rules.TunnelTxChecksumUnsafe, e.ID, e.At.Format(time.RFC3339))
		}
	}
	return ""
}
