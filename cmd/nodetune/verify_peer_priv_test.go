package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/report"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
	"github.com/nodetune/nodetune/tune"
)

// faultyPair is two testbed nodes whose CNI tunnel in A has tx checksum
// offload off (so tunnel-tx-checksum-off fires there, auto-fixable), with
// nodetune serve's responder in B, and an underlay in A that drops tunnel
// packets larger than its MTU: with offload on they leave as large GSO
// packets and are dropped, with it off as MTU-sized ones.
func faultyPair(t *testing.T) (a, b *testbed.Side, token string, before map[string]bool) {
	t.Helper()
	bed := testbedtest.New(t, testbed.Options{})
	a, b = bed.A, bed.B
	token = writeToken(t, "verify-token")
	startResponder(t, a, b, token)
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	dropLargeTunnelPackets(t, a, 4789, 1500)
	before = map[string]bool{}
	for name, st := range features(t, a, a.Tunnel) {
		before[name] = st.Active
	}
	return a, b, token, before
}

func active(t *testing.T, s *testbed.Side) map[string]bool {
	out := map[string]bool{}
	for name, st := range features(t, s, s.Tunnel) {
		out[name] = st.Active
	}
	return out
}

// TestFixVerifyPeerUndoesOnAFaultyUnderlay: fix --verify-peer measures
// the tunnel to the peer through the real measurer and responder, turns
// offload on, measures it slower, rolls it back through the journal,
// holds it, prints both figures and exits 2; the next fix refuses it as
// held.
func TestFixVerifyPeerUndoesOnAFaultyUnderlay(t *testing.T) {
	a, b, token, before := faultyPair(t)
	dir := t.TempDir()
	peer := b.UnderlayIP.String() + ":" + peerPort
	r := nodetuneIn(t, a.NS, nil, nil, fixArgs(dir, "--rule", rules.TunnelTxChecksumOff, "--verify-peer", peer, "--peer.token-file", token)...)
	expectCode(t, r, exitChangeFailed, "fix --verify-peer")
	t.Logf("%s", r.out)
	if !strings.Contains(r.out, "Measured against "+peer) || !strings.Contains(r.out, "slower:") || !strings.Contains(r.out, "before,") ||
		!strings.Contains(r.out, "nodetune fix --release "+rules.TunnelTxChecksumOff) {
		t.Errorf("fix does not print both figures and the hold:\n%s", r.out)
	}
	if diff := cmp.Diff(before, active(t, a)); diff != "" {
		t.Errorf("features after the undo (-before +after):\n%s", diff)
	}
	ro, err := tune.OpenReadOnly(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	holds := ro.Holds()
	ro.Close()
	if len(holds) != 1 || holds[0].Measured == nil || holds[0].Measured.Before < 100e6 || holds[0].Measured.After > holds[0].Measured.Before/10 {
		t.Fatalf("holds: %+v", holds)
	}
	t.Logf("measured: %s", holds[0].Measured)
	r = nodetuneIn(t, a.NS, nil, nil, fixArgs(dir, "--rule", rules.TunnelTxChecksumOff, "--verify-peer", peer, "--peer.token-file", token)...)
	expectCode(t, r, exitIncomplete, "fix --verify-peer again")
	if !strings.Contains(r.out, "held after rollback") || !strings.Contains(r.out, "measured") {
		t.Errorf("the second fix does not refuse it as held by a measurement:\n%s", r.out)
	}
}

// TestServeRemediateUndoesOnAFaultyUnderlay: serve --mode remediate in A,
// verifying against B's responder, turns offload on (the rule fires: a
// kernel with the fix, no bad checksums), measures it slower, undoes it
// through the journal, holds it, and /findings shows
// remediation-measured-slower with both figures; offload stays off.
func TestServeRemediateUndoesOnAFaultyUnderlay(t *testing.T) {
	a, b, token, before := faultyPair(t)
	dir := t.TempDir()
	startIn(t, a.NS, nodetuneBinary(t), "serve", "--mode", "remediate", "--state-dir", dir,
		"--peer.token-file", token, "--peer.verify", b.UnderlayIP.String()+":"+peerPort,
		"--web.listen-address="+verifyServeAddr, "--probe.interval=2s", "--probe.window=200ms", "--kube-proxy.url=", "--log.level=debug")
	client := nsClient(a)
	var found *rules.Finding
	eventually(t, 3*time.Minute, "remediation-measured-slower in /findings", func() error {
		body, err := getBody(client, "http://"+verifyServeAddr+"/findings")
		if err != nil {
			return err
		}
		var doc report.Document
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			return err
		}
		for _, f := range doc.Findings {
			if f.Rule == rules.RemediationMeasuredSlower && f.Subject == a.Tunnel {
				found = &f
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})
	ev := map[string]string{}
	for _, e := range found.Evidence {
		ev[e.Name] = e.Value
	}
	t.Logf("%s; evidence %v", found.Summary, ev)
	if ev["before_bps"] == "" || ev["after_bps"] == "" || !strings.Contains(found.Summary, "before") {
		t.Errorf("the finding lacks both figures: %+v", found)
	}
	if diff := cmp.Diff(before, active(t, a)); diff != "" {
		t.Errorf("features after the undo (-before +after):\n%s", diff)
	}
	// Held: cycles go on, and offload stays off.
	time.Sleep(5 * time.Second)
	if diff := cmp.Diff(before, active(t, a)); diff != "" {
		t.Errorf("features a few cycles later (-before +after):\n%s", diff)
	}
}
