package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodetune/nodetune/internal/felixtest"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/kube/kubetest"
	"github.com/nodetune/nodetune/report"
	"github.com/nodetune/nodetune/rules"
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

	// doctor --calico.cooperate shows the exact change, and makes none.
	r := nodetuneIn(t, bed.A.NS, nil, nil, append([]string{"doctor", "-o", "json", "--window", "200ms", "--kube-proxy.url=", "--calico.cooperate"}, kube...)...)
	var doc report.Document
	if err := json.Unmarshal([]byte(r.out[strings.Index(r.out, "{"):]), &doc); err != nil {
		t.Fatalf("doctor -o json: %v\n%s", err, r.out)
	}
	var fix rules.Fix
	for _, f := range doc.Findings {
		if f.Rule == rules.TunnelTxChecksumOff {
			fix = f.Fix
		}
	}
	for _, want := range []string{`"name":"node.coop-a"`, "kubectl create -f -", "ethtool -K vxlan.calico tx-checksum-ip-generic on"} {
		if !strings.Contains(fix.Command, want) {
			t.Errorf("doctor --calico.cooperate's command does not hold %s: %q", want, fix.Command)
		}
	}
	if want := `created; spec:; + featureDetectOverride: "ChecksumOffloadBroken=false"`; !strings.Contains(fix.Manual, want) {
		t.Errorf("doctor --calico.cooperate does not show the spec diff %s: %q", want, fix.Manual)
	}
	// fix --dry-run --calico.cooperate shows the same, and writes nothing.
	r = nodetuneIn(t, bed.A.NS, nil, nil, fixArgs(state, append([]string{"--dry-run", "--calico.cooperate"}, kube...)...)...)
	for _, want := range []string{"The change to node.coop-a", `+  featureDetectOverride: "ChecksumOffloadBroken=false"`, "by hand: echo"} {
		if r.code != exitIncomplete || !strings.Contains(r.out, want) {
			t.Errorf("fix --dry-run --calico.cooperate (exit %d) does not show %s:\n%s", r.code, want, r.out)
		}
	}
	if nodeObj() != "" {
		t.Fatalf("doctor or fix --dry-run wrote node.%s", node)
	}

	// (a) Without --calico.cooperate: Felix is named, nothing changes.
	r = nodetuneIn(t, bed.A.NS, nil, nil, fixArgs(state)...)
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

// tunnelThroughput measures TCP throughput with iperf3 from src in side a
// to dst in side b, for secs seconds, in bits per second.
func tunnelThroughput(t *testing.T, a, b *testbed.Side, src, dst string, secs int) float64 {
	t.Helper()
	iperf3 := privtest.Tool(t, "iperf3")
	const port = "5298"
	server := exec.Command("ip", "netns", "exec", b.NS, iperf3, "-s", "-1", "-B", dst, "-p", port)
	if err := server.Start(); err != nil {
		t.Fatalf("starting the iperf3 server: %v", err)
	}
	defer func() { server.Process.Kill(); server.Wait() }()
	var out []byte
	var err error
	for try := 0; try < 20; try++ { // until the server listens
		out, err = exec.Command("ip", "netns", "exec", a.NS, iperf3, "-J", "--connect-timeout", "2000", "-B", src, "-c", dst, "-p", port,
			"-t", strconv.Itoa(secs), "-O", "1").Output()
		var r iperf3Result
		if jerr := json.Unmarshal(out, &r); jerr == nil && r.Error == "" && err == nil {
			return r.End.SumReceived.BitsPerSecond
		}
		time.Sleep(100 * time.Millisecond)
	}
	dump := func(s *testbed.Side) string {
		l, _ := exec.Command("ip", "-n", s.NS, "-s", "link", "show", felixtest.TunnelDevice).CombinedOutput()
		r, _ := exec.Command("ip", "netns", "exec", s.NS, "nft", "list", "ruleset").CombinedOutput()
		return string(l) + string(r)
	}
	t.Fatalf("iperf3 client to %s: %v\n%s\nA:\n%s\nB:\n%s", dst, err, out, dump(a), dump(b))
	return 0
}

// TestFelixServeCooperates: serve --mode remediate --calico.cooperate, on
// a node whose Felix keeps vxlan.calico's offload off, writes the
// override, turns offload on once Felix restarted, and it stays on; the
// throughput through vxlan.calico to the other node (a second Felix) comes
// back; rollback after serve stops puts the FelixConfiguration back, and
// Felix switches offload off again.
func TestFelixServeCooperates(t *testing.T) {
	c := kubetest.ForTest(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntsrv"})
	felixtest.Prepare(t, c, "ChecksumOffloadBroken=true")
	// An IPAM block for each node, holding its tunnel address: Felix routes
	// each other node's block through vxlan.calico. (Felix masquerades
	// what the host sends there from an address not of vxlan.calico, so
	// the tunnel addresses are the two ends.)
	src, dst := "192.168.30.1", "192.168.20.1"
	felixtest.Apply(t, c, ipamBlock("192.168.30.0/26", "srv-a")+"---\n"+ipamBlock("192.168.20.0/26", "srv-b"))
	fa := felixtest.Start(t, felixtest.Options{Cluster: c, Side: bed.A, Node: "srv-a", TunnelIP: src})
	felixtest.Start(t, felixtest.Options{Cluster: c, Side: bed.B, Node: "srv-b", TunnelIP: dst})
	waitFelixTx(t, bed.A, false, 30*time.Second)
	waitFelixTx(t, bed.B, false, 30*time.Second)
	waitRoute(t, bed.A, dst)
	waitRoute(t, bed.B, src)
	const secs = 3
	before := tunnelThroughput(t, bed.A, bed.B, src, dst, secs)

	state := t.TempDir()
	kubeconfig := filepath.Join(fa.Dir, "kubeconfig")
	cmd := exec.Command("ip", "netns", "exec", bed.A.NS, nodetuneBinary(t), "serve", "--mode", "remediate", "--calico.cooperate",
		"--kubeconfig", kubeconfig, "--kube.node-name", "srv-a", "--kube-proxy.url=", "--probe.interval", "2s",
		"--state-dir", state, "--web.listen-address", "127.0.0.1:9848")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("serve's log:\n%s", log.String())
		}
	})
	waitFelixTx(t, bed.A, true, 90*time.Second)
	if fa.Restarts() == 0 {
		t.Fatalf("offload went on before Felix restarted with the override")
	}
	on := time.Now()
	for time.Since(on) < 32*time.Second {
		if tx, ok := felixTx(bed.A); !ok || !tx {
			t.Fatalf("offload went off again %s after serve turned it on", time.Since(on).Round(time.Second))
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(log.String(), "stayed on across Felix's reconcile periods") {
		t.Errorf("serve did not report that offload stayed on")
	}
	after := tunnelThroughput(t, bed.A, bed.B, src, dst, secs)
	t.Logf("TCP through vxlan.calico from srv-a to srv-b: %.2f Gbit/s with offload off, %.2f Gbit/s after serve --calico.cooperate", before/1e9, after/1e9)
	if after < 1.3*before {
		t.Errorf("throughput %.2f Gbit/s after the fix against %.2f before: not restored", after/1e9, before/1e9)
	}

	stop()
	restarts := fa.Restarts()
	if r := nodetuneIn(t, bed.A.NS, nil, nil, rollbackArgs(state, "--kubeconfig", kubeconfig)...); r.code != exitOK {
		t.Fatalf("rollback: exit %d\n%s", r.code, r.out)
	}
	if out, _ := c.Kubectl(t, c.Dir, "get", "felixconfigurations.crd.projectcalico.org", "--ignore-not-found", "-o", "name", "node.srv-a"); strings.TrimSpace(out) != "" {
		t.Fatalf("node.srv-a is left after rollback: %s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := fa.WaitRestarts(ctx, restarts+1); err != nil {
		t.Fatalf("Felix did not restart after the rollback: %v", err)
	}
	waitFelixTx(t, bed.A, false, 30*time.Second)
}

// ipamBlock is an IPAM block of cidr (a /26) affine to node, as Calico's
// IPAM writes it: Felix routes it to that node.
func ipamBlock(cidr, node string) string {
	name := strings.NewReplacer(".", "-", "/", "-").Replace(cidr)
	nulls := strings.TrimSuffix(strings.Repeat("null, ", 64), ", ")
	free := make([]string, 64)
	for i := range free {
		free[i] = strconv.Itoa(i)
	}
	return fmt.Sprintf(`apiVersion: crd.projectcalico.org/v1
kind: IPAMBlock
metadata: {name: %s}
spec: {cidr: %q, affinity: "host:%s", strictAffinity: false, deleted: false, attributes: [], allocations: [%s], unallocated: [%s]}
`, name, cidr, node, nulls, strings.Join(free, ", "))
}

// waitRoute waits until side has a route to addr through vxlan.calico.
func waitRoute(t *testing.T, side *testbed.Side, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", side.NS, "route", "get", addr).CombinedOutput()
		if err == nil && strings.Contains(string(out), felixtest.TunnelDevice) {
			return
		}
		if time.Now().After(deadline) {
			routes, _ := exec.Command("ip", "-n", side.NS, "route").CombinedOutput()
			t.Fatalf("no route to %s through %s in %s: %s\n%s", addr, felixtest.TunnelDevice, side.NS, out, routes)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestFelixFightsTheOverride: a Felix whose own environment says
// ChecksumOffloadBroken=true (which wins over every FelixConfiguration,
// and which nodetune cannot see here) switches offload off again after
// fix --calico.cooperate turned it on: fix rolls the override back,
// reports remediation-conflict naming Felix, and leaves the cluster as it
// was.
func TestFelixFightsTheOverride(t *testing.T) {
	c := kubetest.ForTest(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntfight"})
	felixtest.Prepare(t, c, "ChecksumOffloadBroken=true")
	node := "fight-a"
	f := felixtest.Start(t, felixtest.Options{Cluster: c, Side: bed.A, Node: node,
		Env: []string{"FELIX_FEATUREDETECTOVERRIDE=ChecksumOffloadBroken=true"}})
	waitFelixTx(t, bed.A, false, 30*time.Second)
	state := t.TempDir()
	r := nodetuneIn(t, bed.A.NS, nil, nil, fixArgs(state, "--calico.cooperate", "--kubeconfig", filepath.Join(f.Dir, "kubeconfig"), "--kube.node-name", node)...)
	if r.code != exitChangeFailed || !strings.Contains(r.out, "remediation-conflict: calico-felix switched tx checksum offload off again") {
		t.Fatalf("fix --calico.cooperate against a Felix that ignores the override: exit %d\n%s", r.code, r.out)
	}
	out, err := c.Kubectl(t, c.Dir, "get", "felixconfigurations.crd.projectcalico.org", "--ignore-not-found", "-o", "name", "node."+node)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("node.%s after the conflict: %q, %v", node, out, err)
	}
	if on, _ := felixTx(bed.A); on {
		t.Fatal("offload is on after the conflict")
	}
	// Nothing is left for rollback.
	if r := nodetuneIn(t, bed.A.NS, nil, nil, rollbackArgs(state, "--kubeconfig", filepath.Join(f.Dir, "kubeconfig"))...); r.code != exitOK ||
		!strings.Contains(r.out, "Nothing to roll back") {
		t.Errorf("rollback after the conflict: exit %d\n%s", r.code, r.out)
	}
}

// TestFelixKillAtEveryStep kills fix --calico.cooperate (the crash hook of
// a nodetunetest build) at each step of the FelixConfiguration's journaled
// write, on a node with vxlan.calico and a real API server (no Felix: the
// steps come before anything waits for it), and then runs rollback: the
// cluster and the device are as before every time, whether node.<name>
// existed (its spec put back exactly) or not (deleted).
func TestFelixKillAtEveryStep(t *testing.T) {
	c := kubetest.ForTest(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntkill"})
	felixtest.Prepare(t, c, "SNATFullyRandom=false,ChecksumOffloadBroken=true")
	if out, err := exec.Command("ip", "-n", bed.A.NS, "link", "add", felixtest.TunnelDevice, "type", "vxlan", "id", "4096",
		"dstport", "4789", "dev", testbed.UnderlayName).CombinedOutput(); err != nil {
		t.Fatalf("creating %s: %v\n%s", felixtest.TunnelDevice, err, out)
	}
	if err := bed.A.SetFeatures(felixtest.TunnelDevice, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		t.Fatal(err)
	}
	var l net.Listener
	if err := bed.A.Do(func() (err error) { l, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := c.Kubeconfig(t.TempDir(), c.Proxy(t, l), c.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	const node = "kill-a"
	get := func() string {
		t.Helper()
		out, err := c.Kubectl(t, c.Dir, "get", "felixconfigurations.crd.projectcalico.org", "--ignore-not-found", "node."+node,
			"-o", "jsonpath={.spec}")
		if err != nil {
			t.Fatalf("kubectl get: %v\n%s", err, out)
		}
		return strings.TrimSpace(out)
	}
	for _, existing := range []string{"", `{"featureDetectOverride":"B=true","logSeverityScreen":"Debug"}`} {
		if existing != "" {
			felixtest.Apply(t, c, fmt.Sprintf("apiVersion: crd.projectcalico.org/v1\nkind: FelixConfiguration\nmetadata: {name: node.%s}\nspec: %s\n", node, existing))
		}
		before := get()
		for _, step := range []string{"intent", "write", "applied", "verified"} {
			t.Run(fmt.Sprintf("existing=%t/%s", existing != "", step), func(t *testing.T) {
				state := t.TempDir()
				r := nodetuneIn(t, bed.A.NS, []string{tune.CrashEnv + "=" + step + ":1"}, nil,
					fixArgs(state, "--calico.cooperate", "--kubeconfig", kubeconfig, "--kube.node-name", node)...)
				if !r.killed {
					t.Fatalf("not killed at %s (exit %d):\n%s", step, r.code, r.out)
				}
				r = nodetuneIn(t, bed.A.NS, nil, nil, rollbackArgs(state, "--hold=false", "--kubeconfig", kubeconfig)...)
				if r.code != exitOK {
					t.Fatalf("rollback after a kill at %s: exit %d\n%s", step, r.code, r.out)
				}
				if got := get(); got != before {
					t.Errorf("node.%s after a kill at %s and rollback: %q, want %q", node, step, got, before)
				}
				if on, _ := felixTx(bed.A); on {
					t.Errorf("offload on after a kill at %s and rollback", step)
				}
			})
		}
	}
}
