package main

// serve --mode remediate --calico.cooperate: the cooperation with Felix of
// nodetune fix, across the daemon's cycles instead of in one blocking
// command. One cycle writes the override; the cycles after it wait until
// Felix restarted with it before offload may go on; once it is on, each
// cycle checks that it stays on, until two of Felix's reconcile periods
// have passed. If Felix switches it off again, the override and the
// offload change are rolled back, remediation-conflict names Felix, and
// nodetune writes no override again until it restarts.

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// felixPhase is where a cooperation with Felix stands.
type felixPhase int

const (
	// felixIdle: no override written by this process yet, or Felix has
	// restarted with it.
	felixIdle felixPhase = iota
	// felixRestarting: the override was written; offload waits for Felix
	// to restart.
	felixRestarting
	// felixVerifying: offload is on; each cycle checks that it stays on.
	felixVerifying
	// felixDone: offload stayed on across two reconcile periods.
	felixDone
	// felixGaveUp: Felix switched offload off despite the override, which
	// was rolled back.
	felixGaveUp
)

// felixRemediator is the daemon's Remediator with the Felix cooperation
// around it.
type felixRemediator struct {
	daemon.TuneRemediator
	procfs string
	log    *slog.Logger
	now    func() time.Time
	// settle is how long to wait where Felix's restart cannot be seen, and
	// staysOn how long offload must stay on.
	settle, staysOn time.Duration

	mu       sync.Mutex
	phase    felixPhase
	pids     []int
	pidErr   error
	since    time.Time
	override tune.Key
	dev      string
	finding  rules.Finding
	conflict []rules.Finding
}

var _ daemon.ConflictSource = (*felixRemediator)(nil)

func newFelixRemediator(inner daemon.TuneRemediator, procfs string, log *slog.Logger) *felixRemediator {
	return &felixRemediator{TuneRemediator: inner, procfs: procfs, log: log, now: time.Now, settle: felixUnseenSettle, staysOn: felixStaysOn}
}

// Apply applies the fixes as TuneRemediator does, holding offload back
// while Felix has not restarted with a fresh override, and never writing
// the override again once Felix fought it.
func (r *felixRemediator) Apply(ctx context.Context, s *detect.Snapshot, findings []rules.Finding) ([]daemon.Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.phase == felixRestarting && r.restarted() {
		r.log.Info("Felix restarted with the override; tx checksum offload may go on", "override", r.override.Target)
		r.phase = felixIdle
	}
	switch r.phase {
	case felixRestarting:
		findings = stripChanges(findings, isOffloadOn)
	case felixGaveUp:
		findings = stripChanges(findings, func(c rules.Change) bool { return c.Kind == rules.ChangeFelixConfiguration })
	}
	pids, pidErr := felixPIDs(r.procfs) // before the override, to see Felix restart after it
	// Through TuneRemediator's Apply, so that the offload change is
	// measured against a peer where serve verifies.
	out, res, err := r.TuneRemediator.ApplyTune(ctx, s, findings)
	for _, o := range out {
		switch {
		case o.Change.Kind == rules.ChangeFelixConfiguration && o.Result == tune.Verified:
			r.phase, r.pids, r.pidErr, r.since, r.override = felixRestarting, pids, pidErr, r.now(), o.Change.Key
			r.log.Info("wrote the FelixConfiguration override; offload waits for Felix to restart", "override", o.Change.Target,
				"felix_pids", pids, "felix_visible", pidErr == nil)
		case o.Change.Kind == rules.ChangeFelixConfiguration:
			r.override = o.Change.Key
		case isOffloadOn(rules.Change{Kind: o.Change.Kind, Setting: o.Change.Setting, Value: o.Change.To}) && o.Result == tune.Verified &&
			o.Change.Owner != nil && o.Change.Owner.Name == detect.OwnerFelix && r.phase != felixGaveUp:
			r.phase, r.since, r.dev = felixVerifying, r.now(), o.Change.Target
			if i := slices.IndexFunc(findings, func(f rules.Finding) bool { return f.Rule == o.Change.Rule && f.Subject == o.Change.Subject }); i >= 0 {
				r.finding = findings[i]
			}
			r.log.Info("turned tx checksum offload on with Felix's override in place; checking that it stays on", "device", r.dev, "for", r.staysOn)
		case r.phase == felixVerifying && o.Action == tune.ActionRollback && o.Change.Key == offloadKey(r.dev) &&
			(o.Result == tune.Restored || o.Result == tune.Closed):
			// Undone because it measured slower, and held: offload off
			// now is nodetune's doing, not Felix's.
			r.phase = felixIdle
			r.log.Info("the offload change measured slower and was undone; nothing to check against Felix", "device", r.dev)
		}
	}
	return res, err
}

// restarted reports whether Felix restarted since the override: none of
// its earlier processes runs and another does, or, where its processes
// cannot be seen, settle has passed.
func (r *felixRemediator) restarted() bool {
	if r.pidErr != nil {
		return r.now().Sub(r.since) >= r.settle
	}
	now, err := felixPIDs(r.procfs)
	return err == nil && !slices.ContainsFunc(now, func(p int) bool { return slices.Contains(r.pids, p) })
}

// Holdings are TuneRemediator's, after the check of a cooperation being
// verified: offload still on (and, after staysOn, done), or switched off
// by Felix, which rolls the override and offload back.
func (r *felixRemediator) Holdings(ctx context.Context) ([]daemon.Holding, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.phase == felixVerifying {
		r.verify(ctx)
	}
	return r.TuneRemediator.Holdings(ctx)
}

func (r *felixRemediator) verify(ctx context.Context) {
	v, err := r.System.Read(ctx, offloadKey(r.dev))
	switch {
	case err != nil:
		r.log.Warn("cannot read tx checksum offload to check that Felix leaves it on", "device", r.dev, "err", err)
		return
	case v.Effective == "on" && r.now().Sub(r.since) >= r.staysOn:
		r.phase = felixDone
		r.log.Info("tx checksum offload stayed on across Felix's reconcile periods", "device", r.dev, "for", r.now().Sub(r.since).Round(time.Second))
		return
	case v.Effective == "on":
		return
	}
	back := r.Tuner.RollbackKeys(ctx, cooperationKeys(r.override, r.dev))
	r.phase = felixGaveUp
	f := r.finding
	if f.Owner == nil {
		f.Owner = &detect.Owner{Name: detect.OwnerFelix}
	}
	c := rules.ConflictFinding(rules.Conflict{Finding: f, Reverts: 1, Window: r.now().Sub(r.since).Round(time.Second)})
	c.Summary = detect.OwnerFelix + " switched tx checksum offload off again on " + r.dev + " despite nodetune's override in " +
		r.override.Target + "; nodetune rolled the override back and leaves offload to Felix"
	r.conflict = []rules.Finding{c}
	r.log.Warn("Felix switched offload off despite the override; rolled the override back", "rule", rules.RemediationConflict,
		"device", r.dev, "override", r.override.Target, "rollback", outcomeLines(back))
}

// Conflicts is the remediation-conflict of a cooperation Felix fought.
func (r *felixRemediator) Conflicts() []rules.Finding {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.conflict)
}

// isOffloadOn reports whether c turns tx checksum offload on.
func isOffloadOn(c rules.Change) bool {
	return c.Kind == rules.ChangeFeature && c.Setting == detect.FeatureTxChecksumGeneric && c.Value == "on"
}

// stripChanges returns findings without the changes drop matches.
func stripChanges(findings []rules.Finding, drop func(rules.Change) bool) []rules.Finding {
	out := make([]rules.Finding, 0, len(findings))
	for _, f := range findings {
		f.Fix.Changes = slices.DeleteFunc(slices.Clone(f.Fix.Changes), drop)
		out = append(out, f)
	}
	return out
}

func outcomeLines(out []tune.Outcome) []string {
	var lines []string
	for _, o := range out {
		lines = append(lines, o.String())
	}
	return lines
}
