package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodetune/nodetune/bench"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/kube/kubetest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// nodeWithAddress registers Node name with address as its InternalIP.
func nodeWithAddress(t *testing.T, c *kubetest.Cluster, name, address string) {
	t.Helper()
	n := c.CreateNode(t, name)
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: address}}
	if _, err := c.Admin.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("giving Node %s the address %s: %v", name, address, err)
	}
}

// unchanged checks that neither node holds a temporary tunnel and that
// b listens on no more ports than before.
func unchanged(t *testing.T, what string, a, b *testbed.Side, before []string) {
	t.Helper()
	for _, s := range []*testbed.Side{a, b} {
		if l := peerLinks(t, s); len(l) > 0 {
			t.Errorf("%s: %s holds temporary tunnels %v", what, s.NS, l)
		}
	}
	if after := listeners(t, b); !slices.Equal(after, before) {
		t.Errorf("%s: the responder's node listened on %v, now on %v", what, before, after)
	}
}

// openSession opens a session on b's responder from a's namespace, as a
// measurer would, and returns the HTTP status.
func openSession(t *testing.T, a, b *testbed.Side, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+net.JoinHostPort(b.UnderlayIP.String(), peerPort)+bench.PeerPathSessions,
		bytes.NewReader([]byte(`{"streams":1,"duration_ms":1000,"cases":1}`)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := nsClient(a).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestPeerRefusals: against a responder in a cluster (the real
// kube-apiserver, reached as the DaemonSet's ServiceAccount with the
// shipped RBAC), a wrong token, an address that is no Node's and a second
// run while one is open are refused: nothing is created, no port opened,
// nothing measured. Once the measurer's address is a Node's, the same
// request measures.
func TestPeerRefusals(t *testing.T) {
	privtest.Root(t)
	c := kubetest.ForTest(t)
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// kubectl with an admin kubeconfig of this cluster's own: the
	// harness's Kubectl keeps the first cluster's of the test binary.
	admin, err := c.Kubeconfig(t.TempDir(), "", c.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	apply := exec.Command(kubetest.Tool(t, "kubectl"), "--kubeconfig="+admin, "apply", "--server-side", "-k", "deploy/overlays/observe")
	apply.Dir = root
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	saToken, err := c.Token(context.Background(), "nodetune", "nodetune")
	if err != nil {
		t.Fatal(err)
	}
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntpeer"})
	a, b := bed.A, bed.B
	nodeWithAddress(t, c, "peer-b", b.UnderlayIP.String())
	var l net.Listener
	if err := b.Do(func() (err error) { l, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := c.Kubeconfig(t.TempDir(), c.Proxy(t, l), saToken)
	if err != nil {
		t.Fatal(err)
	}
	token := writeToken(t, "right-token")
	resp := startResponder(t, a, b, token, "--kubeconfig="+kubeconfig, "--kube.node-name=peer-b")
	before := listeners(t, b)

	_, r := peerBench(t, a, b, writeToken(t, "wrong-token"))
	if r.code != exitFailure || !strings.Contains(r.out, "HTTP 401") {
		t.Errorf("wrong token: exit %d, want %d with HTTP 401:\n%s", r.code, exitFailure, r.out)
	}
	unchanged(t, "wrong token", a, b, before)

	_, r = peerBench(t, a, b, token)
	if r.code != exitFailure || !strings.Contains(r.out, "HTTP 403") {
		t.Errorf("not a Node's address: exit %d, want %d with HTTP 403:\n%s", r.code, exitFailure, r.out)
	}
	unchanged(t, "not a Node's address", a, b, before)
	if strings.Contains(resp.out.String(), "session opened") {
		t.Errorf("a refused request opened a session:\n%s", resp.out.String())
	}

	nodeWithAddress(t, c, "peer-a", a.UnderlayIP.String())
	// The responder lists the Nodes again for an unknown address at most
	// every few seconds.
	eventually(t, 20*time.Second, "the measurer's Node is admitted", func() error {
		res := openSession(t, a, b, "right-token")
		if res.StatusCode != http.StatusCreated {
			return fmt.Errorf("HTTP %d", res.StatusCode)
		}
		return nil
	})
	// That session is open: a second run is refused with 429.
	second := openSession(t, a, b, "right-token")
	if second.StatusCode != http.StatusTooManyRequests || second.Header.Get("Retry-After") == "" {
		t.Errorf("second session: HTTP %d, Retry-After %q; want 429 with Retry-After", second.StatusCode, second.Header.Get("Retry-After"))
	}
	_, r = peerBench(t, a, b, token)
	if r.code != exitFailure || !strings.Contains(r.out, "already runs") {
		t.Errorf("bench while a session is open: exit %d, want %d saying a measurement runs:\n%s", r.code, exitFailure, r.out)
	}
	unchanged(t, "a second run", a, b, before)
	if strings.Contains(resp.out.String(), "temporary tunnel created") {
		t.Errorf("a refused request made a device:\n%s", resp.out.String())
	}
	if t.Failed() {
		return
	}
	// The held session goes silent and ends; then the Node measures.
	eventually(t, 30*time.Second, "the silent session ends", func() error {
		if !strings.Contains(resp.out.String(), "went silent") {
			return fmt.Errorf("still open")
		}
		return nil
	})
	res, r := peerBench(t, a, b, token, "--direction", "send")
	expectCode(t, r, exitOK, "bench --peer from a Node")
	if res.Peer != "peer-b" || len(res.Cases) != 4 {
		t.Errorf("measured %q with %d cases, want peer-b with 4", res.Peer, len(res.Cases))
	}
}

// TestPeerSweepAfterKill: a responder killed with SIGKILL mid-run leaves
// its temporary tunnel; the next one removes it when it starts. A
// measurer killed mid-run leaves its own, which its next run removes,
// and the responder ends the silent session by itself.
func TestPeerSweepAfterKill(t *testing.T) {
	bed := testbedtest.New(t, testbed.Options{})
	a, b := bed.A, bed.B
	token := writeToken(t, "tok")
	args := []string{"bench", "--peer", b.UnderlayIP.String() + ":" + peerPort, "--peer.token-file", token,
		"-o", "json", "--duration", "3s", "--streams", "1", "--direction", "send", "--kube-proxy.url="}
	waitLink := func(s *testbed.Side, prefix string) string {
		t.Helper()
		var name string
		eventually(t, 30*time.Second, "a temporary tunnel in "+s.NS, func() error {
			for _, l := range peerLinks(t, s) {
				if strings.HasPrefix(l, prefix) {
					name = l
					return nil
				}
			}
			return fmt.Errorf("none yet")
		})
		return name
	}

	// The responder dies.
	resp := startResponder(t, a, b, token)
	measurer := startIn(t, a.NS, append([]string{nodetuneBinary(t)}, args...)...)
	left := waitLink(b, bench.ResponderDevicePrefix)
	if err := resp.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = resp.cmd.Wait()
	_ = measurer.cmd.Wait()
	if l := peerLinks(t, b); !slices.Contains(l, left) {
		t.Fatalf("after SIGKILL the responder's %s is gone already (%v): the test proves nothing", left, l)
	}
	resp = startResponder(t, a, b, token)
	if l := peerLinks(t, b); len(l) > 0 {
		t.Errorf("a new responder kept the leftover %v", l)
	}
	if !strings.Contains(resp.out.String(), left) {
		t.Errorf("the new responder did not say it removed %s:\n%s", left, resp.out.String())
	}
	if l := peerLinks(t, a); len(l) > 0 {
		t.Errorf("the measurer kept %v after its responder died", l)
	}

	// The measurer dies.
	measurer = startIn(t, a.NS, append([]string{nodetuneBinary(t)}, args...)...)
	mine := waitLink(a, bench.MeasurerDevicePrefix)
	waitLink(b, bench.ResponderDevicePrefix)
	if err := measurer.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = measurer.cmd.Wait()
	eventually(t, 30*time.Second, "the responder ends the silent session", func() error {
		if l := peerLinks(t, b); len(l) > 0 {
			return fmt.Errorf("%s still holds %v", b.NS, l)
		}
		return nil
	})
	res, r := peerBench(t, a, b, token, "--direction", "send")
	expectCode(t, r, exitOK, "bench --peer after a killed one")
	if !slices.Contains(res.Swept, mine) {
		t.Errorf("the next measurer swept %v, want %s", res.Swept, mine)
	}
	if l := peerLinks(t, a); len(l) > 0 {
		t.Errorf("%s holds %v", a.NS, l)
	}
}
