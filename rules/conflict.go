package rules

import (
	"fmt"
	"time"
)

// RemediationConflict is the rule ID of a setting that nodetune stopped
// managing because another agent kept undoing its fix. It is not in the
// Catalog: the serve loop, which alone sees changes being undone over
// time, raises it through ConflictFinding.
const RemediationConflict = "remediation-conflict"

// Conflict is what the serve loop observed about one contested setting.
type Conflict struct {
	// Finding is the finding whose fix kept being undone.
	Finding Finding
	// Reverts is how many times the fix was undone within Window.
	Reverts int
	// Window is the back-off window the reverts were counted in.
	Window time.Duration
}

// ConflictFinding is the finding for a setting nodetune gave up on after
// c.Reverts reverts. It names the owner when the original finding knew it.
func ConflictFinding(c Conflict) Finding {
	f := c.Finding
	who := "another agent"
	if f.Owner != nil {
		who = f.Owner.Name
	}
	out := Finding{
		Rule:     RemediationConflict,
		Severity: Warning,
		Subject:  f.Subject,
		Summary: fmt.Sprintf("%s undid nodetune's fix for %s on %s %d times in %s; nodetune stopped re-applying it",
			who, f.Rule, f.Subject, c.Reverts, c.Window),
		Explanation: "nodetune applied the fix for " + f.Rule + " and something changed the setting back. Re-applying it " +
			"forever would make the setting flap, and the performance with it, so nodetune backs off and leaves the " +
			"setting to its owner. The loss the original finding describes stays until the owner is told to change it.",
		Evidence: []Evidence{
			{"rule", f.Rule}, {"subject", f.Subject}, {"reverts", fmt.Sprint(c.Reverts)}, {"window", c.Window.String()},
			{"fix", f.Fix.Command},
		},
		Impact:     f.Impact,
		Owner:      f.Owner,
		References: f.References,
		Fix: Fix{
			Command: f.Fix.Command,
			Manual:  "find what resets the setting and change it there",
		},
	}
	if f.Owner != nil {
		out.Evidence = append(out.Evidence, Evidence{"owner", f.Owner.Name})
		out.Fix.Command = f.Owner.DurableFix
		out.Fix.Manual = f.Owner.Why + "; make the change through it: " + f.Owner.DurableFix
	}
	return out
}
