package main

import (
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// TestRollbackIsTheUsersWord: after `nodetune rollback`, a serve
// --mode remediate started afterwards does not make the change again, nor
// does fix; `fix --release` lifts the hold, and the change is made.
func TestRollbackIsTheUsersWord(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	dir := t.TempDir()
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...), exitOK, "fix")
	r := nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir)...)
	expectCode(t, r, exitOK, "rollback")
	if !strings.Contains(r.out, "Held:") || !strings.Contains(r.out, "--release") {
		t.Errorf("rollback does not say what it holds:\n%s", r.out)
	}

	serve := startIn(t, a.NS, nodetuneBinary(t), "serve", "--mode=remediate", "--state-dir="+dir,
		"--web.listen-address="+serveAddr, "--probe.interval=30s", "--probe.window=200ms", "--kube-proxy.url=")
	client := nsClient(a)
	refused := `nodetune_remediations_total{action="apply",result="refused",rule="tunnel-tx-checksum-off"}`
	eventually(t, 15*time.Second, "a refused remediation", func() error {
		if _, err := getBody(client, "http://"+serveAddr+"/readyz"); err != nil {
			return err
		}
		if metricValue(t, client, refused) < 1 {
			return errString("not refused yet")
		}
		return nil
	})
	if features(t, a, a.Tunnel)[detect.FeatureTxChecksumGeneric].Active {
		t.Error("serve --mode remediate made the change the user rolled back")
	}
	if err := serve.stop(t); err != nil {
		t.Fatalf("serve: %v", err)
	}

	r = nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...)
	expectCode(t, r, exitIncomplete, "fix after rollback")
	if !strings.Contains(r.out, "held after rollback") || features(t, a, a.Tunnel)[detect.FeatureTxChecksumGeneric].Active {
		t.Errorf("fix does not hold the change:\n%s", r.out)
	}
	r = nodetuneIn(t, a.NS, nil, nil, fixArgs(dir, "--release", "all")...)
	expectCode(t, r, exitOK, "fix --release all")
	if !strings.Contains(r.out, "Released the hold") || !features(t, a, a.Tunnel)[detect.FeatureTxChecksumGeneric].Active {
		t.Errorf("fix --release all did not make the change:\n%s", r.out)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestReleaseNotConfirmedKeepsTheHold: `fix --release` whose plan is not
// confirmed (no --yes, and no terminal to ask on) changes nothing, the
// hold included: a later fix still refuses the held change.
func TestReleaseNotConfirmedKeepsTheHold(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	dir := t.TempDir()
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...), exitOK, "fix")
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir)...), exitOK, "rollback")
	r := nodetuneIn(t, a.NS, nil, nil, "fix", "--window", "200ms", "--kube-proxy.url=", "--state-dir", dir, "--release", "all")
	expectCode(t, r, exitIncomplete, "fix --release all, not confirmed")
	if strings.Contains(r.out, "Released the hold") {
		t.Errorf("a release that was not confirmed says it released the hold:\n%s", r.out)
	}
	r = nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...)
	expectCode(t, r, exitIncomplete, "fix after the unconfirmed release")
	if !strings.Contains(r.out, "held after rollback") || features(t, a, a.Tunnel)[detect.FeatureTxChecksumGeneric].Active {
		t.Errorf("the hold did not survive a release that was not confirmed:\n%s", r.out)
	}
}
