package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
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
	// RolledBack: a rollback wrote back the value nodetune found before
	// its change.
	RolledBack
	// Failed: the change could not be made, or the kernel did not take it
	// (then its original was written back); the note says which, and
	// whether the journal entry stays open for rollback.
	Failed
	// Conflict: another agent kept undoing nodetune's change, so nodetune
	// backs off, or a rollback found a value someone else changed since.
	Conflict
	// JournalUnusable: the remediation journal is corrupt, foreign or
	// locked, so the agent only observes.
	JournalUnusable
)

// outcomes holds each outcome's event reason, type and action.
var outcomes = map[Outcome]struct{ reason, typ, action string }{
	Applied:         {"RemediationApplied", eventTypeNormal, "Remediate"},
	Verified:        {"RemediationVerified", eventTypeNormal, "Verify"},
	RolledBack:      {"RemediationRolledBack", eventTypeNormal, "Rollback"},
	Failed:          {"RemediationFailed", eventTypeWarning, "Remediate"},
	Conflict:        {"RemediationConflict", eventTypeWarning, "BackOff"},
	JournalUnusable: {"RemediationJournalUnusable", eventTypeWarning, "Remediate"},
}

// Reason is the event reason users filter on, such as "RemediationApplied".
func (o Outcome) Reason() string {
	if e, ok := outcomes[o]; ok {
		return e.reason
	}
	return fmt.Sprintf("Outcome%d", int(o))
}

const (
	// eventQueue is how many events may wait for the API server; more are
	// dropped (and logged) rather than slow the serve loop down.
	eventQueue = 128
	// seriesWindow is how long an identical event extends the earlier one
	// (a series with a count) instead of making a new one, as client-go's
	// event recorder does.
	seriesWindow = 6 * time.Minute
	// eventTries is how often writing one event is tried.
	eventTries = 3
)

// seriesKey is what makes two events the same, apart from their time.
type seriesKey struct{ reason, action, typ, note string }

// Event records on the Node that a remediation for rule on subject (a
// device, a sysctl) had outcome o; note says what was changed, from what
// to what, or why it failed. An event about no one rule (rule empty) is
// the note alone. It does not block: events are written in the
// background, and an identical event within six minutes adds to the count
// of the first instead of making another.
func (r *Reporter) Event(o Outcome, rule, subject, note string) {
	e, ok := outcomes[o]
	if !ok {
		r.log.Error("unknown remediation outcome; event not recorded", "outcome", int(o), "rule", rule)
		return
	}
	msg := note
	if rule != "" {
		msg = fmt.Sprintf("%s on %s: %s", rule, subject, note)
	}
	// events.k8s.io/v1 caps a note at 1 kB.
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	ref := objectReference{Kind: "Node", APIVersion: "v1", Name: r.nodeName, UID: r.nodeName}
	if n, ok := r.cached(); ok {
		ref.UID = string(n.UID)
	}
	ev := event{
		ObjectMeta:          ObjectMeta{Namespace: NamespaceDefault},
		EventTime:           NewMicroTime(time.Now()),
		ReportingController: Controller,
		ReportingInstance:   r.opts.Instance,
		Action:              e.action,
		Reason:              e.reason,
		Regarding:           ref,
		Note:                msg,
		Type:                e.typ,
	}
	r.evMu.Lock()
	defer r.evMu.Unlock()
	if r.closed {
		r.log.Warn("event after Close; not recorded", "reason", e.reason, "note", msg)
		return
	}
	select {
	case r.queue <- ev:
	default:
		r.log.Warn("too many events waiting for the API server; dropped one", "reason", e.reason, "note", msg)
	}
}

// writeEvents writes queued events until the queue is closed.
func (r *Reporter) writeEvents(ctx context.Context) {
	defer close(r.done)
	for ev := range r.queue {
		var err error
		for try := range eventTries {
			if err = r.record(ctx, ev); err == nil || ctx.Err() != nil || IsInvalid(err) || IsForbidden(err) {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(try+1) * time.Second):
			}
		}
		if err != nil {
			r.log.Error("recording an event on the Node", "reason", ev.Reason, "note", ev.Note, "err", err)
		}
	}
}

// record creates ev, or extends the series of an identical recent event.
func (r *Reporter) record(ctx context.Context, ev event) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := ev.EventTime.Time
	for k, prev := range r.series {
		if now.Sub(lastObserved(prev)) >= seriesWindow {
			delete(r.series, k)
		}
	}
	key := seriesKey{ev.Reason, ev.Action, ev.Type, ev.Note}
	if prev, ok := r.series[key]; ok {
		series := eventSeries{Count: 2, LastObservedTime: ev.EventTime}
		if prev.Series != nil {
			series.Count = prev.Series.Count + 1
		}
		patch, err := json.Marshal(map[string]any{"series": series})
		if err != nil {
			return fmt.Errorf("encoding an event series: %w", err)
		}
		out := &event{}
		err = r.client.Patch(ctx, eventsPath(prev.Namespace, prev.Name), MergePatch, patch, out)
		if err == nil {
			r.series[key] = out
			return nil
		}
		if !IsNotFound(err) {
			return fmt.Errorf("updating the count of event %s: %w", prev.Name, err)
		}
		delete(r.series, key) // expired on the server: start anew
	}
	// Named like client-go's recorder does: the object, then the time.
	ev.Name = fmt.Sprintf("%s.%x", r.nodeName, now.UnixNano())
	out := &event{}
	err := r.client.Post(ctx, eventsPath(ev.Namespace, ""), &ev, out)
	if err != nil {
		return fmt.Errorf("creating event %s: %w", ev.Reason, err)
	}
	r.series[key] = out
	return nil
}

// lastObserved is when an event or its series last happened.
func lastObserved(ev *event) time.Time {
	if ev.Series != nil {
		return ev.Series.LastObservedTime.Time
	}
	return ev.EventTime.Time
}

// eventsPath is the path of the events.k8s.io/v1 events in namespace, or
// of the one called name.
func eventsPath(namespace, name string) string {
	return Path("events.k8s.io", "v1", namespace, "events", name)
}
