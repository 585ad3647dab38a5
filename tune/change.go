package tune

import (
	"fmt"
	"strings"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// Key names one setting on the host that tune may write: rules'
// SettingKey, the identity rules, tune and the daemon share. Its fields
// are the journal's "kind", "target" and "setting".
type Key = rules.SettingKey

// Value is a setting's state as read from the host.
type Value struct {
	// Set is the value last asked for: for an ethtool feature, "on" when it
	// is requested on; for the other kinds, the value read.
	Set string `json:"set"`
	// Effective is the value in force: for an ethtool feature, "on" when it
	// is active; for the other kinds, the same as Set.
	Effective string `json:"effective"`
}

// Change is one planned write: what, from what, to what, and why.
type Change struct {
	Key
	// From is the value the snapshot showed (the effective value).
	From string `json:"from"`
	// To is the value to write.
	To string `json:"to"`
	// Rule and Subject are the finding the change fixes.
	Rule    string `json:"rule"`
	Subject string `json:"subject"`
	// Why is the finding's one-line summary.
	Why string `json:"why"`
	// Owner is the agent that manages this setting, if any.
	Owner *detect.Owner `json:"owner,omitempty"`
	// Refused says why the change will not be made; empty when it will.
	Refused string `json:"refused,omitempty"`
	// Reason is Refused as one stable word (refusal.go).
	Reason Reason `json:"reason,omitempty"`
	// Held is set when the change is refused because the user rolled it
	// back (ErrHeld).
	Held bool `json:"held,omitempty"`
	// Notes say what else the change brings with it.
	Notes []string `json:"notes,omitempty"`

	// vetted is set by Plan once the change passed the allowlist and the
	// gates; Apply writes nothing else.
	vetted bool
	// kind is the change's kind, set when it is planned or read from the
	// journal.
	kind Kind
}

// Command is the shell command a person would run to make the change.
func (c Change) Command() string {
	if c.kind == nil {
		kind, err := HostKinds(nil).Lookup(c.Kind)
		if err != nil {
			return ruleCommand(c.Key, c.To)
		}
		c.kind = kind
	}
	return c.kind.Command(c.Key, c.To)
}

// Plan is the set of changes tune proposes for a snapshot, in the order
// they will be made, refused ones included with their reason.
type Plan struct {
	Changes []Change `json:"changes"`
	// by is the Tuner whose Plan made it, after consulting its journal;
	// Apply makes no change of a plan another Tuner, or Propose, made.
	by *Tuner
	// approved is what Plan approved for each setting, so a change edited
	// after planning is not made.
	approved map[Key]approval
}

// approval is what Apply relies on in a change Plan approved: the value it
// writes, the value the staleness check compares, and the finding the
// journal records (which later plans' claims and releases match).
type approval struct{ to, from, rule, subject string }

func approvalOf(c Change) approval { return approval{c.To, c.From, c.Rule, c.Subject} }

// approve records the approved changes of p as made by t.
func (p *Plan) approve(t *Tuner) {
	p.by, p.approved = t, map[Key]approval{}
	for _, c := range p.Approved() {
		p.approved[c.Key] = approvalOf(c)
	}
}

// approves reports whether t's Plan made p and approved c as it is.
func (p Plan) approves(t *Tuner, c Change) bool {
	a, ok := p.approved[c.Key]
	return p.by == t && ok && a == approvalOf(c)
}

// Approved returns the changes that Apply will make.
func (p Plan) Approved() []Change { return p.filter(false) }

// Refusals returns the changes that were refused, each with its reason.
func (p Plan) Refusals() []Change { return p.filter(true) }

func (p Plan) filter(refused bool) []Change {
	var out []Change
	for _, c := range p.Changes {
		if (c.Refused != "") == refused {
			out = append(out, c)
		}
	}
	return out
}

// Action is what an Outcome was part of.
type Action string

// Actions.
const (
	ActionApply     Action = "apply"
	ActionRollback  Action = "rollback"
	ActionReconcile Action = "reconcile"
)

// Result is how one change ended.
type Result string

// Results of Apply, Rollback and Reconcile.
const (
	// Verified: written, and read back at the new value.
	Verified Result = "verified"
	// Unchanged: already at the wanted value; nothing was written.
	Unchanged Result = "unchanged"
	// Refused: not attempted, for the reason in Outcome.Err.
	Refused Result = "refused"
	// Failed: the change could not be made or checked; Outcome.Err says why
	// and what state the setting was left in.
	Failed Result = "failed"
	// Reverted: the kernel did not take the value, so the original was
	// written back.
	Reverted Result = "reverted"
	// Restored: rollback wrote the original value back.
	Restored Result = "restored"
	// Closed: rollback or reconcile found the original value still in place
	// (the write never happened) and closed the journal entry; or rollback
	// closed the entry of a kernel module it leaves loaded (Outcome.Note).
	Closed Result = "closed"
	// Conflict: someone else changed the value since nodetune set it; it was
	// left alone and nodetune no longer claims it.
	Conflict Result = "conflict"
	// Planned: a dry run would make this write; Outcome.Command is it.
	Planned Result = "planned"
	// Gone: the device or network namespace of the setting no longer
	// exists (a device of the same name is another device), and its
	// original value went with it; the journal entry is closed as gone.
	Gone Result = "gone"
)

// Outcome is what happened to one change.
type Outcome struct {
	Change Change `json:"change"`
	Action Action `json:"action"`
	Result Result `json:"result"`
	// Command is the equivalent shell command of the write made or planned.
	Command string `json:"command,omitempty"`
	// Note says what else a person should know about the outcome, such as
	// a module that rollback left loaded.
	Note string `json:"note,omitempty"`
	// Entry is the journal entry the write was recorded in, when one was.
	Entry int64 `json:"entry,omitempty"`
	Err   error `json:"-"`
}

// Ok reports whether the outcome leaves the setting as intended.
func (o Outcome) Ok() bool {
	switch o.Result {
	case Verified, Unchanged, Restored, Closed, Planned, Gone:
		return true
	}
	return false
}

// String is one line for a person.
func (o Outcome) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s %s %s", o.Result, o.Change.Kind, o.Change.Key)
	if o.Change.From != "" || o.Change.To != "" {
		fmt.Fprintf(&b, ": %s -> %s", o.Change.From, o.Change.To)
	}
	if o.Err != nil {
		fmt.Fprintf(&b, " (%v)", o.Err)
	}
	if o.Note != "" {
		fmt.Fprintf(&b, " (%s)", o.Note)
	}
	return b.String()
}
