package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/internal/felixtest"
	"github.com/nodetune/nodetune/kube/kubetest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
	"github.com/nodetune/nodetune/tune"
)

// felixTx reads vxlan.calico's tx checksum offload in side; ok is false
// while the device does not exist.
func felixTx(side *testbed.Side) (on, ok bool) {
	f, err := side.Features(felixtest.TunnelDevice)
	if err != nil {
		return false, false
	}
	return f["tx-checksum-ip-generic"], true
}

// waitFelixTx waits until vxlan.calico's tx checksum offload is want.
func waitFelixTx(t *testing.T, side *testbed.Side, want bool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if on, ok := felixTx(side); ok && on == want {
			return
		}
		if time.Now().After(deadline) {
			on, ok := felixTx(side)
			t.Fatalf("%s: tx checksum offload is not %t after %s (now %t, device exists %t)", felixtest.TunnelDevice, want, timeout, on, ok)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFelixCooperation runs nodetune against a real Felix whose default
// FelixConfiguration says ChecksumOffloadBroken=true: without
// --calico.cooperate it names Felix and changes nothing; killed between
// the FelixConfiguration write and the offload change, rollback puts the
// cluster and the device back; with --calico.cooperate, fix ends with
// offload on, still on well after two of Felix's reconcile periods; and
// rollback deletes node.<name>, after which Felix restarts and switches
// offload off again.
func TestFelixCooperation(t *testing.T) {
	c := kubetest.ForTest(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntcoop"})
	felixtest.Prepare(t, c, "ChecksumOffloadBroken=true")
	node := "coop-a"
	f := felixtest.Start(t, felixtest.Options{Cluster: c, Side: bed.A, Node: node})
	waitFelixTx(t, bed.A, false, 30*time.Second)
	kubeconfig := filepath.Join(f.Dir, "kubeconfig") // through the proxy in bed.A's namespace
	state := t.TempDir()
	kube := []string{"--kubeconfig", kubeconfig, "--kube.node-name", node}
	nodeObj := func() string {
		t.Helper()
		out, err := c.Kubectl(t, c.Dir, "get", "felixconfigurations.crd.projectcalico.org", "--ignore-not-found", "-o", "name", "node."+node)
		if err != nil {
			t.Fatalf("kubectl get: %v\n%s", err, out)
		}
		return strings.TrimSpace(out)
	}
	ready := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := f.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// (a) Without --calico.cooperate: Felix is named, nothing changes.
	r := nodetuneIn(t, bed.A.NS, nil, nil, fixArgs(state)...)
	if r.code != exitIncomplete || !strings.Contains(r.out, "calico-felix owns this setting") {
		t.Fatalf("fix without --calico.cooperate: exit %d\n%s", r.code, r.out)
	}
	if on, _ := felixTx(bed.A); on || nodeObj() != "" || f.Restarts() != 0 {
		t.Fatalf("fix without --calico.cooperate changed something: tx %v, node object %q, Felix restarts %d", on, nodeObj(), f.Restarts())
	}

	// (d) Killed right after the FelixConfiguration write, before offload:
	// rollback deletes the object it created; the device stays off.
	r = nodetuneIn(t, bed.A.NS, []string{tune.CrashEnv + "=write:1"}, nil, fixArgs(state, append([]string{"--calico.cooperate"}, kube...)...)...)
	if !r.killed || nodeObj() == "" {
		t.Fatalf("the crash hook did not kill fix after the object write (killed %v, node object %q):\n%s", r.killed, nodeObj(), r.out)
	}
	r = nodetuneIn(t, bed.A.NS, nil, nil, rollbackArgs(state, "--hold=false", "--kubeconfig", kubeconfig)...)
	if r.code != exitOK || nodeObj() != "" {
		t.Fatalf("rollback after the kill: exit %d, node object %q\n%s", r.code, nodeObj(), r.out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Felix restarts once for the write (and again for the delete, unless
	// it came back after both); either way it reads the object gone.
	if err := f.WaitRestarts(ctx, 1); err != nil {
		t.Fatalf("Felix did not restart for the write and the rollback: %v (exit codes %v)", err, f.ExitCodes())
	}
	time.Sleep(5 * time.Second) // a second restart, if there is one, has begun
	ready()
	if on, _ := felixTx(bed.A); on {
		t.Fatal("offload is on after the kill and rollback")
	}

	// (b) With --calico.cooperate: offload on, and staying on.
	restarts := f.Restarts()
	r = nodetuneIn(t, bed.A.NS, nil, nil, fixArgs(state, append([]string{"--calico.cooperate"}, kube...)...)...)
	if r.code != exitOK || !strings.Contains(r.out, "Offload stayed on") {
		t.Fatalf("fix --calico.cooperate: exit %d\n%s", r.code, r.out)
	}
	if f.Restarts() <= restarts || nodeObj() == "" {
		t.Fatalf("Felix restarts %d (before %d), node object %q", f.Restarts(), restarts, nodeObj())
	}
	t.Logf("fix --calico.cooperate:\n%s", r.out)
	deadline := time.Now().Add(12 * time.Second) // fix watched 25 s; 30 s and more in all
	for time.Now().Before(deadline) {
		if on, ok := felixTx(bed.A); !ok || !on {
			t.Fatal("Felix switched offload off after fix --calico.cooperate")
		}
		time.Sleep(500 * time.Millisecond)
	}

	// (c) Rollback: node.<name> deleted, Felix restarts and turns offload off.
	restarts = f.Restarts()
	r = nodetuneIn(t, bed.A.NS, nil, nil, rollbackArgs(state, "--kubeconfig", kubeconfig)...)
	if r.code != exitOK || nodeObj() != "" {
		t.Fatalf("rollback: exit %d, node object %q\n%s", r.code, nodeObj(), r.out)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel2()
	if err := f.WaitRestarts(ctx2, restarts+1); err != nil {
		t.Fatalf("Felix did not restart after the rollback: %v", err)
	}
	waitFelixTx(t, bed.A, false, 30*time.Second)
}
