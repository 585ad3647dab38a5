package main

import (
	"context"
	"fmt"

	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/tune"
)

// openRemediator opens the journal under f.stateDir with the same host
// access as nodetune fix, and returns the Remediator remediate mode applies
// fixes through. The daemon reconciles the journal before its first cycle.
//
// With felix (--calico.cooperate), the Felix override kind is registered
// and the Remediator cooperates with Felix (serve_calico.go). Without it,
// a journal that holds Felix override entries still gets the kind, if the
// API server can be reached, so that they can be checked and rolled back.
func openRemediator(ctx context.Context, g *globals, f serveFlags, felix *felixAPI) (daemon.Remediator, func(), error) {
	sys, closeSys, err := g.tuneSystem()
	if err != nil {
		return nil, nil, err
	}
	if felix != nil {
		sys.More = append(sys.More, felix.kind)
	}
	t, err := tune.Open(f.stateDir, sys)
	if err != nil {
		closeSys()
		return nil, nil, fmt.Errorf("opening the remediation journal in %s: %w", f.stateDir, err)
	}
	if felix == nil && journalHasFelix(t) {
		if api, err := openFelixAPI(ctx, f.kube.kubeconfig); err != nil {
			g.log.Error("the journal holds FelixConfiguration changes, and the API server cannot be reached to check or roll them back", "err", err)
		} else {
			sys.More = append(sys.More, api.kind)
		}
	}
	closeAll := func() {
		if err := t.Close(); err != nil {
			g.log.Error("closing the remediation journal", "err", err)
		}
		closeSys()
	}
	var measure tune.MeasureFunc
	if f.verifies() {
		if measure, err = newVerifyMeasurer(g, f.peer.tokenFile, f.peer.device, f.peer.caFile); err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("the peer measurer that verifies changes: %w", err)
		}
	}
	rem := daemon.TuneRemediator{Tuner: t, System: sys, Plan: tune.PlanOptions{Force: f.force, Rules: f.rules, Exclude: f.excludeRules},
		Verify: f.verifier(measure)}
	if felix != nil {
		return newFelixRemediator(rem, g.paths.ProcFS, g.log), closeAll, nil
	}
	return rem, closeAll, nil
}
