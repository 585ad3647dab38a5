package tune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Rollback restores, newest first, every value nodetune set and still
// claims. A setting still at the value nodetune set is written back to its
// original; one already at its original (the write never happened, or was
// undone) is closed; one someone else has changed since is reported as a
// Conflict and left alone. A setting whose restore fails keeps its older
// entries open too, so its first original is never lost. A kernel module
// stays loaded, and its entry is closed with a note. With dryRun Rollback
// writes nothing, to the host or the journal, and each Planned outcome
// carries the command to run by hand; a Tuner from OpenReadOnly does a dry
// run without even taking the journal's lock.
func (t *Tuner) Rollback(ctx context.Context, dryRun bool) []Outcome {
	return t.rollback(ctx, dryRun, nil)
}

// RollbackKeys is Rollback of the entries of keys alone, such as a
// cooperation with an owner that did not hold: the rest of what nodetune
// changed stays as it is.
func (t *Tuner) RollbackKeys(ctx context.Context, keys []Key) []Outcome {
	if len(keys) == 0 {
		return nil
	}
	return t.rollback(ctx, false, keys)
}

func (t *Tuner) rollback(ctx context.Context, dryRun bool, keys []Key) []Outcome {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Outcome
	var stop error
	if !dryRun {
		stop = t.j.usable()
	}
	// blocked holds the settings whose newer entry was not undone in this
	// pass: an older entry of one of them would read nodetune's own newer
	// value and take it for someone else's, and so release its original.
	// Both are keyed by the setting in its network namespace.
	blocked := map[setting]bool{}
	// simulated holds, in a dry run, the value each setting would have
	// after the newer steps were undone, so that a setting nodetune changed
	// twice is planned back through each step.
	simulated := map[setting]Value{}
	for _, e := range t.j.open() {
		if keys != nil && !slices.Contains(keys, e.Key) {
			continue
		}
		c := entryChange(e)
		c.kind = t.kind(e.Key)
		o := Outcome{Change: c, Action: ActionRollback, Command: t.kind(e.Key).Command(e.Key, e.Original.Set)}
		switch {
		case stop != nil:
			o.Result, o.Err = Failed, stop
		case ctx.Err() != nil:
			o.Result, o.Err = Failed, fmt.Errorf("not attempted: %w", ctx.Err())
		case blocked[settingOf(e)]:
			o.Result, o.Err = Failed, errors.New("not attempted: a newer change to this setting was not undone first; its journal entry stays open")
		case t.otherNetns(e) != "":
			o, stop = t.elsewhere(ctx, o, e, dryRun)
		default:
			o, stop = t.restore(ctx, o, e, dryRun, simulated, nil)
		}
		if o.Result == Failed {
			blocked[settingOf(e)] = true
		}
		t.logOutcome(o, dryRun)
		out = append(out, o)
	}
	if !dryRun {
		t.maybeCompact()
	}
	return out
}

// setting is one setting in one network namespace: devices and
// per-namespace sysctls of the same name in two namespaces are two.
type setting struct {
	Key
	netns string
}

func settingOf(e *Entry) setting { return setting{e.Key, e.NetNS} }

// restore rolls back one entry. In a dry run it reads a setting's value
// from simulated once an earlier step has planned a write to it, and
// records there the value it plans. The event that closes the entry
// carries m, the measurement that led to the rollback, if any.
func (t *Tuner) restore(ctx context.Context, o Outcome, e *Entry, dryRun bool, simulated map[setting]Value, m *Measured) (Outcome, error) {
	k, moved, err := t.locate(ctx, e.Key, e.Device)
	if errors.Is(err, ErrGone) {
		return t.gone(o, e, err, dryRun)
	}
	if err != nil {
		o.Result, o.Err = Failed, fmt.Errorf("identifying the device of %s: %w; its journal entry stays open", e.Key, err)
		return o, nil
	}
	if moved != "" {
		// The device was renamed: rollback follows it, and says so.
		o.Note, o.Command, o.Change.Key = moved, t.kind(k).Command(k, e.Original.Set), k
	}
	cur, ok := simulated[settingOf(e)]
	if !ok {
		var err error
		if cur, err = t.sys.Read(ctx, k); err != nil {
			o.Result, o.Err = Failed, fmt.Errorf("reading %s: %w; its journal entry stays open", k, err)
			return o, nil
		}
	}
	record := func(ev string, r Result, why error) (Outcome, error) {
		o.Result, o.Err = r, why
		if dryRun {
			return o, nil
		}
		note := o.Note
		if why != nil {
			note = why.Error()
		}
		return t.recordMeasured(o, e, ev, cur, note, m)
	}
	if ev, done := t.settled(&o, e, cur); done {
		if ev == evClosed {
			o.Note = moved
		}
		return record(ev, o.Result, o.Err)
	}
	if why := t.kind(k).Irreversible(); why != "" {
		// Loading a module is irreversible: kube-proxy may use it by now.
		o.Command, o.Note = "", why
		return record(evClosed, Closed, nil)
	}
	if dryRun {
		o.Result = Planned
		simulated[settingOf(e)] = e.Original
		return o, nil
	}
	if err := t.sys.Writable(ctx, k); err != nil {
		o.Result, o.Err = Failed, fmt.Errorf("%w; its journal entry stays open", err)
		return o, nil
	}
	if err := t.sys.Write(ctx, k, e.Original.Set); err != nil {
		o.Result, o.Err = Failed, fmt.Errorf("%w; its journal entry stays open", err)
		return o, nil
	}
	t.crash.at("restore")
	back, err := t.sys.Read(ctx, k)
	if err != nil || !t.equal(k, back.Set, e.Original.Set) {
		o.Result, o.Err = Failed, fmt.Errorf("wrote %s back to %s but it does not read back (%v, read %q); its journal entry stays open", e.Original.Set, k, err, back.Set)
		return o, nil
	}
	cur = back
	o, err = record(evRestored, Restored, nil)
	t.crash.at("restored")
	return o, err
}

// gone closes entry e, whose device or network namespace no longer exists,
// as gone: its original value went with it, so there is nothing to write.
func (t *Tuner) gone(o Outcome, e *Entry, why error, dryRun bool) (Outcome, error) {
	o.Result, o.Err, o.Command = Gone, why, ""
	if dryRun {
		return o, nil
	}
	if err := t.j.event(e, evGone, nil, why.Error()); err != nil {
		o.Result, o.Err = Failed, fmt.Errorf("recording %s for %s: %w", evGone, e.Key, err)
		return o, errJournalDown
	}
	return o, nil
}

// elsewhere handles entry e, made in another network namespace: gone when
// that namespace no longer exists, otherwise left for a nodetune that runs
// there.
func (t *Tuner) elsewhere(ctx context.Context, o Outcome, e *Entry, dryRun bool) (Outcome, error) {
	alive, err := t.sys.NetNSAlive(ctx, e.NetNS)
	switch {
	case err != nil:
		o.Result, o.Err = Failed, fmt.Errorf("%s (whether that namespace still exists could not be told: %v)", t.otherNetns(e), err)
		return o, nil
	case alive:
		o.Result, o.Err = Failed, errors.New(t.otherNetns(e))
		return o, nil
	}
	return t.gone(o, e, fmt.Errorf("%s: %w: network namespace %s, where entry %d was made, no longer exists", e.Key, ErrGone, strings.Trim(e.NetNS, "net:[]"), e.ID), dryRun)
}

// Reconcile finishes what a process that died mid-apply left behind, and
// is meant to run after Open. An entry whose write never happened (the
// setting still has its original value) is closed; one whose write did is
// read back and marked verified, or reverted if the kernel did not take it;
// one someone else has changed since is released as a Conflict.
func (t *Tuner) Reconcile(ctx context.Context) []Outcome {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Outcome
	stop := t.j.usable()
	for _, e := range t.j.open() {
		if e.State != evIntent && e.State != evApplied {
			continue
		}
		if t.otherNetns(e) != "" {
			continue
		}
		c := Change{Key: e.Key, From: e.Original.Effective, To: e.To, Rule: e.Rule, Subject: e.Subject,
			Why: fmt.Sprintf("journal entry %d, left %s by run %s", e.ID, e.State, e.Run), vetted: true, kind: t.kind(e.Key)}
		o := Outcome{Change: c, Action: ActionReconcile, Command: c.Command()}
		if stop != nil {
			o.Result, o.Err = Failed, stop
		} else {
			o, stop = t.reconcile(ctx, o, e)
		}
		t.logOutcome(o, false)
		out = append(out, o)
		if stop != nil {
			break
		}
	}
	t.maybeCompact()
	return out
}

func (t *Tuner) reconcile(ctx context.Context, o Outcome, e *Entry) (Outcome, error) {
	k, moved, err := t.locate(ctx, e.Key, e.Device)
	if errors.Is(err, ErrGone) {
		return t.gone(o, e, err, false)
	}
	if err != nil {
		o.Result, o.Err = Failed, fmt.Errorf("identifying the device of %s: %w; its journal entry stays open", e.Key, err)
		return o, nil
	}
	o.Note = moved
	o.Change.Key = k
	cur, err := t.sys.Read(ctx, k)
	if err != nil {
		o.Result, o.Err = Failed, fmt.Errorf("reading %s: %w; its journal entry stays open", k, err)
		return o, nil
	}
	if ev, done := t.settled(&o, e, cur); done {
		return t.record(o, e, ev, cur, errText(o.Err))
	}
	if t.equal(k, cur.Effective, e.To) {
		o.Result = Verified
		return t.record(o, e, evVerified, cur, "")
	}
	return t.revert(ctx, o, e, e.Original, cur)
}

// settled classifies entry e by cur, the value its setting has now. While
// the setting holds the value nodetune set, done is false and the caller
// restores or verifies it. Otherwise o says how the entry closes, and ev is
// the event that closes it: Closed when the setting is at its original (the
// write never happened, or was undone), or released as a Conflict when
// someone else set a third value.
func (t *Tuner) settled(o *Outcome, e *Entry, cur Value) (ev string, done bool) {
	k := e.Key
	switch {
	case t.equal(k, cur.Set, e.Original.Set):
		o.Result, o.Err, o.Command = Closed, nil, ""
		return evClosed, true
	case !t.equal(k, cur.Set, e.To):
		o.Result, o.Err = Conflict, fmt.Errorf("%s is now %s, neither its original %s nor the %s nodetune set: someone else changed it, so it is left alone",
			k, cur.Set, e.Original.Set, e.To)
		return evReleased, true
	}
	return "", false
}

// record journals event ev for entry e, with the value read from the host
// and a note saying why, if any. If the journal cannot be written, the outcome
// fails and errJournalDown tells the caller to stop touching the host.
func (t *Tuner) record(o Outcome, e *Entry, ev string, cur Value, note string) (Outcome, error) {
	return t.recordMeasured(o, e, ev, cur, note, nil)
}

// recordMeasured is record, with the measurement that led to the event.
func (t *Tuner) recordMeasured(o Outcome, e *Entry, ev string, cur Value, note string, m *Measured) (Outcome, error) {
	if err := t.j.measuredEvent(e, ev, &cur, note, m); err != nil {
		o.Result, o.Err = Failed, fmt.Errorf("recording %s for %s: %w", ev, e.Key, err)
		return o, errJournalDown
	}
	return o, nil
}

// errText is err's message, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
