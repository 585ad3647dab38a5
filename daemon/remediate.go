package daemon

import (
	"context"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// TuneRemediator is the Remediator that changes the host through tune: the
// same plan, allowlist, safety gates and write-ahead journal as nodetune fix.
type TuneRemediator struct {
	Tuner *tune.Tuner
	// Plan narrows the plans; Force lets nodetune change settings another
	// agent owns, which the back-off then guards.
	Plan tune.PlanOptions
}

// Apply plans the fixes of findings against s and applies the approved ones.
func (r TuneRemediator) Apply(ctx context.Context, s *detect.Snapshot, findings []rules.Finding) ([]Outcome, error) {
	return outcomes(r.Tuner.Apply(ctx, r.Tuner.Plan(s, findings, r.Plan))), nil
}

// Rollback restores every value nodetune set and nobody changed since.
func (r TuneRemediator) Rollback(ctx context.Context) ([]Outcome, error) {
	return outcomes(r.Tuner.Rollback(ctx, false)), nil
}

// Reconcile finishes what a nodetune that died mid-apply left behind.
func (r TuneRemediator) Reconcile(ctx context.Context) ([]Outcome, error) {
	return outcomes(r.Tuner.Reconcile(ctx)), nil
}

func outcomes(in []tune.Outcome) []Outcome {
	out := make([]Outcome, len(in))
	for i, o := range in {
		out[i] = Outcome{
			Rule: o.Change.Rule, Subject: o.Change.Subject,
			Action: string(o.Action), Result: string(o.Result),
			Ok: o.Ok(), Wrote: o.Result == tune.Verified, Detail: o.String(),
		}
	}
	return out
}
