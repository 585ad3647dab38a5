package main

import (
	"fmt"

	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/tune"
)

// openRemediator opens the journal under f.stateDir with the same host
// access as nodetune fix, and returns the Remediator remediate mode applies
// fixes through. The daemon reconciles the journal before its first cycle.
func openRemediator(g *globals, f serveFlags) (daemon.Remediator, func(), error) {
	sys, closeSys, err := g.tuneSystem()
	if err != nil {
		return nil, nil, err
	}
	t, err := tune.Open(f.stateDir, sys)
	if err != nil {
		closeSys()
		return nil, nil, fmt.Errorf("opening the remediation journal in %s: %w", f.stateDir, err)
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
	return daemon.TuneRemediator{Tuner: t, System: sys, Plan: tune.PlanOptions{Force: f.force, Rules: f.rules, Exclude: f.excludeRules},
		Verify: f.verifier(measure)}, closeAll, nil
}
