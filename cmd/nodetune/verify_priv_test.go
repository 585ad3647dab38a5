package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
	"github.com/nodetune/nodetune/tune"
)

// verifyServeAddr is where the measured-remediation tests' serve listens,
// inside its namespace.
const verifyServeAddr = "127.0.0.1:9751"

// TestServeWaitsForABaseline: in remediate mode with a peer to verify
// against that does not answer, serve does not turn offload on unmeasured:
// the change is refused as "unmeasured" (counted by reason), nothing is
// written to the device or the journal, and it is tried again each cycle.
func TestServeWaitsForABaseline(t *testing.T) {
	privtest.Root(t)
	bed := testbedtest.New(t, testbed.Options{})
	a, b := bed.A, bed.B
	if err := a.SetFeatures(a.Tunnel, map[string]bool{detect.FeatureTxChecksumGeneric: false}); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	startIn(t, a.NS, nodetuneBinary(t), "serve", "--mode", "remediate", "--state-dir", dir,
		"--peer.token-file", token, "--peer.verify", b.UnderlayIP.String()+":9849",
		"--web.listen-address="+verifyServeAddr, "--probe.interval=1s", "--probe.window=200ms", "--kube-proxy.url=", "--log.level=debug")
	client := nsClient(a)
	eventually(t, 30*time.Second, "a refusal for want of a measurement, twice", func() error {
		body, err := getBody(client, "http://"+verifyServeAddr+"/metrics")
		if err != nil {
			return err
		}
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, `nodetune_remediation_refusals_total{reason="unmeasured",rule="tunnel-tx-checksum-off"} `) &&
				!strings.HasSuffix(l, " 1") {
				return nil
			}
		}
		return errString("no repeated unmeasured refusal yet")
	})
	if st := features(t, a, a.Tunnel)[detect.FeatureTxChecksumGeneric]; st.Active || st.Requested {
		t.Errorf("offload turned on unmeasured: %+v", st)
	}
	ro, err := tune.OpenReadOnly(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if e := ro.Entries(); len(e) != 0 {
		t.Errorf("journal entries: %+v", e)
	}
}
