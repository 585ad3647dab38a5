package felixtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nodetune/nodetune/kube/kubetest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// txFeature is the feature `ethtool -K DEV tx on|off` switches on a VXLAN
// device, and Felix switches off.
const txFeature = "tx-checksum-ip-generic"

// txOn reads vxlan.calico's tx checksum offload in side; ok is false while
// the device does not exist.
func txOn(side *testbed.Side) (on, ok bool) {
	f, err := side.Features(TunnelDevice)
	if err != nil {
		return false, false
	}
	return f[txFeature], true
}

// waitTx waits until vxlan.calico exists with tx checksum offload want,
// and returns how long that took.
func waitTx(t *testing.T, side *testbed.Side, want bool, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if on, ok := txOn(side); ok && on == want {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			on, ok := txOn(side)
			t.Fatalf("%s: tx checksum offload is not %t after %s (now %t, device exists %t)", TunnelDevice, want, timeout, on, ok)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFelixOffloadAndPerNodeOverride runs the real Felix and checks what
// nodetune's Calico work rests on: under ChecksumOffloadBroken=true Felix
// creates vxlan.calico with tx checksum offload off and switches it off
// again after `ethtool -K vxlan.calico tx on`; a per-node FelixConfiguration
// with ChecksumOffloadBroken=false makes it restart (exit 129) and leave a
// manual `tx on` alone across its reconcile periods.
func TestFelixOffloadAndPerNodeOverride(t *testing.T) {
	c := kubetest.Get(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntfelix"})
	Prepare(t, c, "ChecksumOffloadBroken=true")
	node := "felix-a"
	_, hostMTUErr := os.Stat("/var/lib/calico/mtu")
	var pids []int
	// Registered before Start, so it runs after Felix is stopped.
	t.Cleanup(func() {
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
				t.Errorf("Felix (pid %d) is still running after the test: %v", pid, err)
			}
		}
		if _, err := os.Stat("/var/lib/calico/mtu"); err == nil && hostMTUErr != nil {
			t.Error("Felix wrote the host's /var/lib/calico/mtu")
		}
	})
	f := Start(t, Options{Cluster: c, Side: bed.A, Node: node})
	pids = append(pids, f.PID())

	took := waitTx(t, bed.A, false, 30*time.Second)
	t.Logf("Felix created %s with tx checksum offload off (%s after ready)", TunnelDevice, took.Round(time.Millisecond))

	if err := bed.A.SetFeatures(TunnelDevice, map[string]bool{txFeature: true}); err != nil {
		t.Fatal(err)
	}
	took = waitTx(t, bed.A, false, 15*time.Second)
	t.Logf("Felix switched tx checksum offload off again %s after `tx on`", took.Round(time.Millisecond))
	if f.Restarts() != 0 {
		t.Fatalf("Felix restarted %d times before any configuration change (exit codes %v)", f.Restarts(), f.ExitCodes())
	}

	Apply(t, c, fmt.Sprintf(`apiVersion: crd.projectcalico.org/v1
kind: FelixConfiguration
metadata: {name: node.%s}
spec: {featureDetectOverride: "ChecksumOffloadBroken=false"}
`, node))
	t.Cleanup(func() {
		_, _ = c.Kubectl(t, c.Dir, "delete", "felixconfigurations.crd.projectcalico.org", "node."+node, "--ignore-not-found")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	if err := f.WaitRestarts(ctx, 1); err != nil {
		t.Fatal(err)
	}
	t.Logf("Felix restarted %s after node.%s was written (exit codes %v)", time.Since(start).Round(time.Millisecond), node, f.ExitCodes())
	pids = append(pids, f.PID())
	if _, err := os.Stat(filepath.Join(f.VarLib, "calico", "mtu")); err != nil {
		t.Errorf("Felix's /var/lib is not the harness's: %v", err)
	}
	if !slices.Contains(f.ExitCodes(), RestartCode) {
		t.Errorf("Felix's exit codes are %v, want a %d (restart on a configuration change)", f.ExitCodes(), RestartCode)
	}

	if err := bed.A.SetFeatures(TunnelDevice, map[string]bool{txFeature: true}); err != nil {
		t.Fatal(err)
	}
	// Felix reconciles the device every 10 s: two periods and some.
	deadline := time.Now().Add(25 * time.Second)
	for time.Now().Before(deadline) {
		if on, ok := txOn(bed.A); !ok || !on {
			t.Fatalf("Felix switched tx checksum offload off (or removed %s) under ChecksumOffloadBroken=false", TunnelDevice)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if on, _ := txOn(bed.A); !on {
		t.Fatal("tx checksum offload is off after 25 s")
	}
}
