package main

import (
	"context"
	"errors"

	"github.com/nodetune/nodetune/daemon"
)

// defaultStateDir is where nodetune keeps its remediation journal.
const defaultStateDir = "/var/lib/nodetune"

// openRemediator opens the journal under f.stateDir, reconciles it, and
// returns the Remediator remediate mode applies fixes through.
func openRemediator(ctx context.Context, g *globals, f serveFlags) (daemon.Remediator, func(), error) {
	return nil, nil, errors.New("--mode remediate: the tune package is not wired in yet")
}

// benchRunner returns the on-demand benchmark, or nil when there is none.
func benchRunner() daemon.BenchRunner { return nil }
