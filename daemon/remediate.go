package daemon

import (
	"context"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// Holding is one setting nodetune holds: the newest open journal entry for
// it, and whether the value nodetune set is still in place.
type Holding struct {
	// Entry is the journal entry's ID; a later change has a larger one.
	Entry int64
	// Rule and Subject name the finding the change fixed.
	Rule, Subject string
	// Change is the setting and the value nodetune set.
	Change rules.Change
	// At is when nodetune made the change.
	At time.Time
	// Live is the setting's value now; empty when it could not be read.
	Live string
	// Undone reports that nodetune wrote the value and read it back, and
	// the setting now holds another: someone changed it since, as tune's
	// kind of the setting compares values.
	Undone bool
	// Stepwise reports that the setting's kind is changed one bounded step
	// at a time (tune.Kind.Stepwise), which serve takes once per window.
	Stepwise bool
}

// TuneRemediator is the Remediator that changes the host through tune: the
// same plan, allowlist, safety gates and write-ahead journal as nodetune fix.
type TuneRemediator struct {
	Tuner *tune.Tuner
	// System reads the live value of the settings the journal holds; it is
	// the one the Tuner was opened with.
	System tune.System
	// Plan narrows the plans; Force lets nodetune change settings another
	// agent owns, which the back-off then guards.
	Plan tune.PlanOptions
	// Verify, when set, measures each change made to raise throughput
	// against a peer, and undoes and holds one that measured slower
	// (tune.Tuner.ApplyVerified).
	Verify *Verify
}

// Apply plans the fixes of findings against s and applies the approved
// ones; with a peer to measure against, the changes made to raise
// throughput are verified by measuring.
func (r TuneRemediator) Apply(ctx context.Context, s *detect.Snapshot, findings []rules.Finding) ([]Outcome, error) {
	_, res, err := r.ApplyTune(ctx, s, findings)
	return res, err
}

// ApplyTune is Apply, returning tune's outcomes as well, for a Remediator
// that wraps this one and acts on what was written.
func (r TuneRemediator) ApplyTune(ctx context.Context, s *detect.Snapshot, findings []rules.Finding) ([]tune.Outcome, []Outcome, error) {
	// A hold nodetune made after a change measured slower lasts until a
	// newer measurement of the change's own subject finds that it helps,
	// judged as the rules judge it (detect.OffloadHurtsMargin).
	if _, err := r.Tuner.ReleaseMeasured(recentPeers(s), detect.OffloadHurtsMargin); err != nil {
		return nil, nil, err
	}
	p := r.Tuner.Plan(s, findings, r.Plan)
	v, ok := r.Verify.verifier(s)
	if !ok {
		out := r.Tuner.Apply(ctx, p)
		return out, outcomes(out), nil
	}
	out, vs := r.Tuner.ApplyVerified(ctx, p, v)
	res := outcomes(out)
	for _, vf := range vs {
		for i := range res {
			if out[i].Action == tune.ActionApply && out[i].Change.Key == vf.Change.Key {
				res[i].Verdict = vf.Verdict
			}
		}
	}
	return out, res, nil
}

// Rollback restores every value nodetune set and nobody changed since.
func (r TuneRemediator) Rollback(ctx context.Context) ([]Outcome, error) {
	return outcomes(r.Tuner.Rollback(ctx, false)), nil
}

// Reconcile finishes what a nodetune that died mid-apply left behind.
func (r TuneRemediator) Reconcile(ctx context.Context) ([]Outcome, error) {
	return outcomes(r.Tuner.Reconcile(ctx)), nil
}

// Holdings lists the newest open journal entry of each setting, with the
// setting's live value read through r.System. It fails when the journal
// can no longer be written, which stops remediation until a restart.
func (r TuneRemediator) Holdings(ctx context.Context) ([]Holding, error) {
	if err := r.Tuner.Usable(); err != nil {
		return nil, err
	}
	var out []Holding
	seen := map[tune.Key]bool{}
	for _, e := range r.Tuner.Entries() { // newest first
		if seen[e.Key] {
			continue
		}
		seen[e.Key] = true
		h := Holding{
			Entry: e.ID, Rule: e.Rule, Subject: e.Subject, At: e.At,
			Change:   rules.Change{Kind: e.Key.Kind, Target: e.Key.Target, Setting: e.Key.Setting, Value: e.To},
			Stepwise: r.Tuner.Kinds().Stepwise(e.Key),
		}
		if r.System != nil {
			// A setting that cannot be read (a device gone, or another
			// device now under its name) is not counted as undone: nobody
			// is known to have changed it.
			k, err := r.Tuner.Locate(ctx, e)
			if err != nil {
				out = append(out, h)
				continue
			}
			if v, err := r.System.Read(ctx, k); err == nil {
				h.Live = v.Effective
				h.Undone = e.Verified() && !r.Tuner.Equal(e.Key, v.Effective, e.To)
			}
		}
		out = append(out, h)
	}
	return out, nil
}

func outcomes(in []tune.Outcome) []Outcome {
	out := make([]Outcome, len(in))
	for i, o := range in {
		out[i] = Outcome{
			Rule: o.Change.Rule, Subject: o.Change.Subject,
			Action: o.Action, Result: o.Result, Reason: o.Change.Reason,
			Ok: o.Ok(), Wrote: o.Result == tune.Verified, Detail: o.String(),
		}
	}
	return out
}
