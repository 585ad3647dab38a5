package kube

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Outcome is what happened to a remediation; each becomes an event on the
// Node with its own reason.
type Outcome int

// The outcomes nodetune records.
const (
	// Applied: nodetune changed a setting to fix a finding.
	Applied Outcome = iota
	// Verified: reading the setting back shows the kernel took the change.
	Verified
	// RolledBack: nodetune restored the value it found before its change.
	RolledBack
	// Failed: the change could not be made or did not take, and was undone.
	Failed
	// Conflict: another agent keeps undoing nodetune's change, and nodetune
	// stopped managing the setting.
	Conflict
)

// outcomes holds each outcome's event reason, type and action.
var outcomes = map[Outcome]struct{ reason, typ, action string }{
	Applied:    {"RemediationApplied", corev1.EventTypeNormal, "Remediate"},
	Verified:   {"RemediationVerified", corev1.EventTypeNormal, "Verify"},
	RolledBack: {"RemediationRolledBack", corev1.EventTypeNormal, "Rollback"},
	Failed:     {"RemediationFailed", corev1.EventTypeWarning, "Remediate"},
	Conflict:   {"RemediationConflict", corev1.EventTypeWarning, "BackOff"},
}

// Reason is the event reason users filter on, such as "RemediationApplied".
func (o Outcome) Reason() string {
	if e, ok := outcomes[o]; ok {
		return e.reason
	}
	return fmt.Sprintf("Outcome%d", int(o))
}

// Event records on the Node that a remediation for rule on subject (a
// device, a sysctl) had outcome o; note says what was changed, from what
// to what, or why it failed. It does not block: events are written in the
// background, and identical ones within minutes are merged into a series.
func (r *Reporter) Event(o Outcome, rule, subject, note string) {
	e, ok := outcomes[o]
	if !ok {
		r.log.Error("unknown remediation outcome; event not recorded", "outcome", int(o), "rule", rule)
		return
	}
	msg := fmt.Sprintf("%s on %s: %s", rule, subject, note)
	// events.k8s.io/v1 caps a note at 1 kB.
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	r.recorder.Eventf(r.ref(), nil, e.typ, e.reason, e.action, "%s", msg)
	r.log.Debug("recorded an event", "reason", e.reason, "note", msg)
}
