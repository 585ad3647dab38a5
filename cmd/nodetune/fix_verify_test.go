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
