package main

import (
	"fmt"

	"github.com/safchain/ethtool"

	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/tune"
)

// openRemediator opens the journal under f.stateDir with the same host
// access as nodetune fix, and returns the Remediator remediate mode applies
// fixes through. The daemon reconciles the journal before its first cycle.
func openRemediator(g *globals, f serveFlags) (daemon.Remediator, func(), error) {
	et, err := ethtool.NewEthtool()
	if err != nil {
		return nil, nil, fmt.Errorf("opening the ethtool socket: %w", err)
	}
	sys := tune.NewHost(g.paths.ProcFS, g.paths.SysFS, et)
	t, err := tune.Open(f.stateDir, sys)
	if err != nil {
		et.Close()
		return nil, nil, fmt.Errorf("opening the remediation journal in %s: %w", f.stateDir, err)
	}
	closeAll := func() {
		if err := t.Close(); err != nil {
			g.log.Error("closing the remediation journal", "err", err)
		}
		et.Close()
	}
	return daemon.TuneRemediator{Tuner: t, System: sys, Plan: tune.PlanOptions{Force: f.force}}, closeAll, nil
}
