package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// TestPrintVerifications: fix --verify-peer prints both figures of each
// measured change, says what was undone and how to allow it again, and
// exits 2 for a change undone, 1 for one that could not be measured.
func TestPrintVerifications(t *testing.T) {
	c := tune.Change{Key: tune.Key{Kind: rules.ChangeFeature, Target: "vxlan0", Setting: detect.FeatureTxChecksumGeneric}, To: "on", Rule: rules.TunnelTxChecksumOff}
	for _, tt := range []struct {
		name string
		vs   []tune.Verification
		code int
		want string
	}{
		{"undone", []tune.Verification{{Change: c, Verdict: tune.VerdictUndone, Measured: tune.Measured{Before: 4.2e9, After: 35e6, Margin: 0.5}}}, exitChangeFailed,
			"\nMeasured against 10.0.0.2:\n" +
				"  slower:     vxlan0 tx-checksum-ip-generic: 4.2 Gbit/s before, 35 Mbit/s after (more than the 50% noise margin lost)\n" +
				"              undone through the journal and held [remediation-measured-slower]; to allow it again: nodetune fix --release tunnel-tx-checksum-off\n"},
		{"kept", []tune.Verification{{Change: c, Verdict: tune.VerdictKept, Measured: tune.Measured{Before: 3e9, After: 9e9, Margin: 0.5}}}, exitOK,
			"\nMeasured against 10.0.0.2:\n  kept:       vxlan0 tx-checksum-ip-generic: 3.0 Gbit/s before, 9.0 Gbit/s after\n"},
		{"unmeasured", []tune.Verification{{Change: c, Verdict: tune.VerdictUnmeasured, Err: errors.New("measuring after the change: 429")}}, exitIncomplete,
			"\nMeasured against 10.0.0.2:\n  unmeasured: vxlan0 tx-checksum-ip-generic: measuring after the change: 429\n"},
		{"nothing to measure", nil, exitOK,
			"\nMeasured: nothing; no change of the plan is made to raise throughput (--verify-peer 10.0.0.2).\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if code := printVerifications(&b, "10.0.0.2", tt.vs); code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServeVerifies: remediate mode measures its changes made to raise
// throughput where this node takes part in peer measurement, not where a
// token only guards POST /bench.
func TestServeVerifies(t *testing.T) {
	for _, tt := range []struct {
		name string
		f    serveFlags
		want bool
	}{
		{"no token", serveFlags{peer: peerFlags{enable: true}}, false},
		{"token for POST /bench only", serveFlags{peer: peerFlags{tokenFile: "t"}, enableBench: true}, false},
		{"peer measurement", serveFlags{peer: peerFlags{tokenFile: "t", enable: true}}, true},
		{"a peer to verify against", serveFlags{peer: peerFlags{tokenFile: "t"}, verify: verifyFlags{peer: "10.0.0.2"}}, true},
	} {
		if got := tt.f.verifies(); got != tt.want {
			t.Errorf("%s: verifies() = %v, want %v", tt.name, got, tt.want)
		}
		if got := tt.f.verifier(func(context.Context, string) (detect.PeerMeasurement, error) { return detect.PeerMeasurement{}, nil }) != nil; got != tt.want {
			t.Errorf("%s: a verifier: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestCooperationOffloadMeasured: fix --calico.cooperate makes its offload
// change through fix's apply, which measures it with --verify-peer; one
// undone because it measured slower is reported with both figures and is
// not then checked against Felix as if it were on.
func TestCooperationOffloadMeasured(t *testing.T) {
	key := tune.Key{Kind: rules.ChangeFeature, Target: "vxlan.calico", Setting: detect.FeatureTxChecksumGeneric}
	c := tune.Change{Key: key, To: "on", Rule: rules.TunnelTxChecksumOff}
	plan := tune.Plan{Changes: []tune.Change{c}}
	for _, tt := range []struct {
		name   string
		out    []tune.Outcome
		vs     []tune.Verification
		on     bool
		code   int
		output string
	}{
		{"kept", []tune.Outcome{{Change: c, Action: tune.ActionApply, Result: tune.Verified}},
			[]tune.Verification{{Change: c, Verdict: tune.VerdictKept, Measured: tune.Measured{Before: 3e9, After: 9e9, Margin: 0.5}}},
			true, exitOK, "kept:"},
		{"undone", []tune.Outcome{{Change: c, Action: tune.ActionApply, Result: tune.Verified}, {Change: c, Action: tune.ActionRollback, Result: tune.Restored}},
			[]tune.Verification{{Change: c, Verdict: tune.VerdictUndone, Measured: tune.Measured{Before: 4e9, After: 3e7, Margin: 0.5}}},
			false, exitChangeFailed, "slower:"},
		{"not verifying", []tune.Outcome{{Change: c, Action: tune.ActionApply, Result: tune.Verified}}, nil, true, exitOK, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var applied []tune.Plan
			apply := func(_ context.Context, p tune.Plan) ([]tune.Outcome, []tune.Verification, error) {
				applied = append(applied, p)
				return tt.out, tt.vs, nil
			}
			peer := "10.0.0.2"
			if tt.vs == nil {
				peer = ""
			}
			var b strings.Builder
			out, code, on, err := offloadOnce(context.Background(), &b, apply, peer, plan, "vxlan.calico")
			if err != nil {
				t.Fatal(err)
			}
			if len(applied) != 1 || len(out) != len(tt.out) {
				t.Fatalf("applied %d plans, %d outcomes; want the one plan through fix's apply", len(applied), len(out))
			}
			if on != tt.on || code != tt.code {
				t.Errorf("on %v, exit %d; want %v, %d", on, code, tt.on, tt.code)
			}
			if !strings.Contains(b.String(), tt.output) {
				t.Errorf("output lacks %q:\n%s", tt.output, b.String())
			}
		})
	}
}
