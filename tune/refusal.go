package tune

import "fmt"

// Reason is why tune refused a change, as one stable word: a refused
// Change's Reason and the `reason` label of
// nodetune_remediation_refusals_total. Users alert on these, so they never
// change.
type Reason string

// Reasons a change is refused.
const (
	// ReasonAllowlist: the kind, setting, target or value is outside what
	// nodetune may write at all.
	ReasonAllowlist Reason = "allowlist"
	// ReasonBound: the value is not one bounded step in the safe direction
	// (a sysctl lowered, doubled twice, or past its cap; an RPS mask that
	// is empty or names a CPU the node lacks).
	ReasonBound Reason = "bound"
	// ReasonGate: a safety gate holds it back: the kernel may lack a fix,
	// bad checksums arrive, or the driver does not let the setting change.
	ReasonGate Reason = "gate"
	// ReasonUnknown: the evidence the gates need could not be read, so
	// nodetune could not check, and does not guess.
	ReasonUnknown Reason = "unknown"
	// ReasonOwner: another agent (Felix, kube-proxy) owns the setting.
	ReasonOwner Reason = "owner"
	// ReasonDuplicate: another finding already plans another value for the
	// same setting.
	ReasonDuplicate Reason = "duplicate"
	// ReasonKeptOff: nodetune turned the setting off for a safety finding
	// and still claims that change.
	ReasonKeptOff Reason = "kept-off"
	// ReasonHeld: the user rolled the setting back (ErrHeld).
	ReasonHeld Reason = "held"
	// ReasonStale: the setting changed since the snapshot it was planned on.
	ReasonStale Reason = "stale"
	// ReasonUnplanned: the change did not come from this Tuner's Plan, so
	// the journal's holds and claims were not consulted.
	ReasonUnplanned Reason = "unplanned"
	// ReasonUnmeasured: a change made to raise throughput waits, because
	// the path it should speed up could not be measured before it.
	ReasonUnmeasured Reason = "unmeasured"
)

// Reasons lists every Reason, in a stable order.
var Reasons = []Reason{ReasonAllowlist, ReasonBound, ReasonGate, ReasonUnknown, ReasonOwner,
	ReasonDuplicate, ReasonKeptOff, ReasonHeld, ReasonStale, ReasonUnplanned, ReasonUnmeasured}

// Refusal is why a change will not be made: a Reason and the sentence for a
// person. The zero Refusal refuses nothing.
type Refusal struct {
	Reason Reason
	Why    string
}

// Refused reports whether r refuses the change.
func (r Refusal) Refused() bool { return r.Reason != "" }

func refuse(r Reason, format string, a ...any) Refusal {
	return Refusal{Reason: r, Why: fmt.Sprintf(format, a...)}
}
