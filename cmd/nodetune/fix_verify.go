package main

// fix --verify-peer: the changes made to raise throughput are measured
// against a peer before and after, and undone when the path measured
// slower, as serve --mode remediate does.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// fixVerifyFlags are fix's options for measuring its changes.
type fixVerifyFlags struct {
	peer, tokenFile, caFile string
	margin                  float64
}

func (v *fixVerifyFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&v.peer, "verify-peer", "", "measure each change made to raise throughput against the responder (nodetune serve --peer.enable) at HOST[:PORT] (default port 9849), before and after it, and undo and hold it if the path measured slower")
	fs.StringVar(&v.tokenFile, "peer.token-file", "", "with --verify-peer: file holding the token the peer's responder expects")
	fs.StringVar(&v.caFile, "peer.tls-ca-file", "", "with --verify-peer: talk HTTPS to the responder, verifying it with this CA bundle")
	fs.Float64Var(&v.margin, "peer.verify-margin", tune.DefaultMargin, "with --verify-peer: share of the measured throughput a change may lose before it counts as slower and is undone; 0: the default")
}

func (v fixVerifyFlags) check() error {
	switch {
	case v.margin < 0 || v.margin >= 1:
		return fmt.Errorf("--peer.verify-margin is %g; want at least 0 (the default) and less than 1", v.margin)
	case v.peer == "" && v.tokenFile != "":
		return errors.New("--peer.token-file is for --verify-peer; give the peer too")
	case v.peer == "":
		return nil
	case v.tokenFile == "":
		return errors.New("--verify-peer needs --peer.token-file, the token the peer's responder expects")
	}
	if _, err := os.Stat(v.tokenFile); err != nil {
		return fmt.Errorf("--peer.token-file: %w", err)
	}
	return nil
}

// applyFix applies plan, measuring the changes made to raise throughput
// when --verify-peer is given.
func applyFix(ctx context.Context, g *globals, v fixVerifyFlags, tu *tune.Tuner, plan tune.Plan) ([]tune.Outcome, []tune.Verification, error) {
	if v.peer == "" {
		return tu.Apply(ctx, plan), nil, nil
	}
	measure, err := newVerifyMeasurer(g, v.tokenFile, "", v.caFile)
	if err != nil {
		return nil, nil, err
	}
	outcomes, vs := tu.ApplyVerified(ctx, plan, tune.Verifier{Peer: v.peer, Measure: measure, Margin: v.margin,
		Retries: tune.DefaultRetries, RetryWait: tune.DefaultRetryWait})
	return outcomes, vs, nil
}

// printVerifications writes what measuring each change found, with both
// figures, and returns the exit status it calls for: a change undone
// because it measured slower is a change that was reverted (2); one that
// could not be measured is incomplete (1).
func printVerifications(w io.Writer, peer string, vs []tune.Verification) int {
	if len(vs) == 0 {
		fmt.Fprintf(w, "\nMeasured: nothing; no change of the plan is made to raise throughput (--verify-peer %s).\n", esc(peer))
		return exitOK
	}
	fmt.Fprintf(w, "\nMeasured against %s:\n", esc(peer))
	code := exitOK
	for _, v := range vs {
		switch v.Verdict {
		case tune.VerdictUndone:
			code = max(code, exitChangeFailed)
			fmt.Fprintf(w, "  slower:     %s: %s before, %s after (more than the %.0f%% noise margin lost)\n",
				v.Change.Key, detect.Rate(v.Measured.Before), detect.Rate(v.Measured.After), 100*v.Measured.Margin)
			fmt.Fprintf(w, "              undone through the journal and held [%s]; to allow it again: nodetune fix --release %s\n",
				rules.RemediationMeasuredSlower, esc(v.Change.Rule))
			if v.Err != nil {
				fmt.Fprintf(w, "              but: %s\n", esc(v.Err.Error()))
			}
		case tune.VerdictKept:
			fmt.Fprintf(w, "  kept:       %s: %s before, %s after\n", v.Change.Key, detect.Rate(v.Measured.Before), detect.Rate(v.Measured.After))
		default:
			code = max(code, exitIncomplete)
			fmt.Fprintf(w, "  %-11s %s: %s\n", string(v.Verdict)+":", v.Change.Key, esc(v.Err.Error()))
		}
	}
	return code
}
