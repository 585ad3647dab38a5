package main

// Measured remediation: in remediate mode, a change made to raise
// throughput (tx checksum offload turned on) is measured against a peer
// just before and just after it, and undone and held when the path
// measured slower (docs/serve.md, "Measured remediation").

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/nodetune/nodetune/bench"
	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/tune"
)

// verifyFlags say against which peer, and with what noise margin,
// remediate mode measures its changes made to raise throughput.
type verifyFlags struct {
	peer   string
	margin float64
}

func (v *verifyFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&v.peer, "peer.verify", "", "in remediate mode, measure each change made to raise throughput against the responder at HOST[:PORT] (default port 9849), before and after it, and undo it if the path measured slower; empty: the peer of the newest recent saved peer measurement, if any; needs --peer.token-file")
	fs.Float64Var(&v.margin, "peer.verify-margin", tune.DefaultMargin, "share of the measured throughput a change may lose before it counts as slower and is undone (noise between two runs); 0: the default")
}

// check rejects a margin outside [0, 1) and a peer without a token.
func (v verifyFlags) check(tokenFile string) error {
	switch {
	case v.margin < 0 || v.margin >= 1:
		return fmt.Errorf("--peer.verify-margin is %g; want at least 0 (the default) and less than 1", v.margin)
	case v.peer != "" && tokenFile == "":
		return errors.New("--peer.verify needs --peer.token-file, the token the peer's responder expects")
	}
	return nil
}

// verifier is how remediate mode measures, or nil when this node takes
// no part in peer measurement (no token file, or neither --peer.enable nor
// --peer.verify: a token given only for POST /bench): then changes made to
// raise throughput are made unverified, as before. A token file that holds
// no token yet counts as none, each cycle anew.
func (f serveFlags) verifier(measure tune.MeasureFunc) *daemon.Verify {
	if !f.verifies() {
		return nil
	}
	tokenFile := f.peer.tokenFile
	return &daemon.Verify{Measure: measure, Peer: f.verify.peer, Margin: f.verify.margin,
		Retries: tune.DefaultRetries, RetryWait: tune.DefaultRetryWait,
		// The DaemonSet mounts the peer Secret whole and optional: until
		// the operator puts a token in it, no peer answers this node, and
		// it remediates unverified as a node without peer measurement.
		Active: func() bool { return bench.HasToken(tokenFile) }}
}

// verifies reports whether remediate mode measures its changes made to
// raise throughput.
func (f serveFlags) verifies() bool {
	return f.peer.tokenFile != "" && (f.peer.enable || f.verify.peer != "")
}
