package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/kube"
	"github.com/nodetune/nodetune/kube/kubetest"
	"github.com/nodetune/nodetune/report"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// TestServeCrossNodeChecksumEvidence is the cross-node exchange on two
// "nodes": the testbed's namespaces joined by veth, a VXLAN device in
// each, a Node for each whose InternalIP is its underlay address, and
// nodetune serve in each, as the DaemonSet's service account with the
// shipped RBAC against the real API server. Node A sends tunnel packets
// with bad outer checksums to B's tunnel port. B traces them to A's
// address and records a TunnelChecksumErrors Event on Node A; A reads it
// and raises tunnel-tx-checksum-unsafe on its own tunnel, critical and
// automatic, within two probe intervals of the burst; in remediate mode A
// turns its tunnel's tx checksum offload off. B, whose kernel has the NAT
// fix, changes nothing of its own.
func TestServeCrossNodeChecksumEvidence(t *testing.T) {
	x := newCrossNode(t)
	a, b, c, ctx := x.a, x.b, x.c, context.Background()
	const nodeA, nodeB = crossNodeA, crossNodeB
	kubeconfig, server, interval, serve := x.kubeconfig, x.server, x.interval, x.serve

	// Observe on A first; the time to the verdict is a benchmark's
	// (BenchmarkCrossNodeChecksumVerdict), here it is only logged.
	took, observeA, stop := x.verdict(t)
	defer stop()
	t.Logf("from the first bad packet at B to A's verdict: %s (probe interval %s)", took.Round(10*time.Millisecond), interval)

	// The Event on Node A says who saw what.
	l, err := c.Admin.EventsV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{
		FieldSelector: "regarding.name=" + nodeA + ",reason=" + kube.ChecksumReason})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 1 {
		t.Fatalf("want one %s event on Node %s, got %d", kube.ChecksumReason, nodeA, len(l.Items))
	}
	ann := l.Items[0].Annotations
	t.Logf("B's report: window %s to %s, created %s", ann[kube.AnnotationWindowStart], ann[kube.AnnotationWindowEnd],
		l.Items[0].CreationTimestamp.UTC().Format("15:04:05"))
	if ann[kube.AnnotationReceiver] != nodeB || ann[kube.AnnotationSource] != a.UnderlayIP.String() ||
		ann[kube.AnnotationPort] != "4789" {
		t.Errorf("event annotations %v", ann)
	}
	if n, err := strconv.Atoi(ann[kube.AnnotationCount]); err != nil || n <= 0 {
		t.Errorf("event count %q", ann[kube.AnnotationCount])
	}
	if l, _ := c.Admin.EventsV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{
		FieldSelector: "regarding.name=" + nodeB + ",reason=" + kube.ChecksumReason}); len(l.Items) != 0 {
		t.Errorf("events about the receiver B: %+v", l.Items)
	}

	// doctor on A, given the cluster, shows the report and the verdict;
	// with credentials the API server refuses, it says it cannot tell.
	doc := doctorInCluster(t, a.NS, kubeconfig[a], nodeA)
	if r := doc.Facts.UDP.Reported; r == nil || r.Err.Failed() || len(r.Reports) != 1 || r.Reports[0].Receiver != nodeB {
		t.Errorf("doctor's reports: %+v", r)
	}
	if f := findingFor(doc, rules.TunnelTxChecksumUnsafe, a.Tunnel); f == nil || !f.Fix.Auto || f.Severity != rules.Critical {
		t.Errorf("doctor's %s on %s: %+v", rules.TunnelTxChecksumUnsafe, a.Tunnel, f)
	}
	refused, err := c.Kubeconfig(t.TempDir(), server[a], "not-a-token")
	if err != nil {
		t.Fatal(err)
	}
	doc = doctorInCluster(t, a.NS, refused, nodeA)
	if r := doc.Facts.UDP.Reported; r == nil || !r.Err.Failed() || len(r.Reports) != 0 {
		t.Errorf("doctor with refused credentials: reports %+v; want an error", r)
	}
	if !slices.ContainsFunc(doc.Unchecked, func(u rules.Unchecked) bool {
		return u.Rule == rules.TunnelTxChecksumUnsafe && u.Subject == a.Tunnel
	}) {
		t.Errorf("doctor with refused credentials does not say it could not check: %+v", doc.Unchecked)
	}
	if findingFor(doc, rules.TunnelTxChecksumUnsafe, a.Tunnel) != nil {
		t.Errorf("doctor with refused credentials found %s anyway", rules.TunnelTxChecksumUnsafe)
	}
	text, _ := doctorIn(t, a.NS, "--kubeconfig="+refused, "--kube.node-name="+nodeA)
	if !strings.Contains(text, "what other nodes reported about this node's tunnel packets is unknown") {
		t.Errorf("doctor's text does not say the reports are unknown:\n%s", text)
	}

	// Remediate on A: its own tunnel's offload goes off.
	if err := observeA.stop(t); err != nil {
		t.Fatal(err)
	}
	serve(t, a, nodeA, "remediate")
	waitFeature(t, a, a.Tunnel, false, 20*time.Second)
	if f, err := b.Features(b.Tunnel); err != nil || !f["tx-checksum-ip-generic"] {
		t.Errorf("B's offload changed (on=%v, err %v): the evidence B holds is about A", f["tx-checksum-ip-generic"], err)
	}
	// It stays off: the report keeps tunnel-tx-checksum-off from turning
	// it back on.
	time.Sleep(3 * interval)
	if f, err := a.Features(a.Tunnel); err != nil || f["tx-checksum-ip-generic"] {
		t.Errorf("A's offload was turned back on (err %v)", err)
	}
}

// doctorInCluster runs doctor -o json in ns against the cluster of
// kubeconfig, as node.
func doctorInCluster(t *testing.T, ns, kubeconfig, node string) report.Document {
	t.Helper()
	out, _ := doctorIn(t, ns, "-o", "json", "--kubeconfig="+kubeconfig, "--kube.node-name="+node)
	var doc report.Document
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("doctor -o json: %v\n%s", err, out)
	}
	return doc
}

// The Nodes of the cross-node scenario.
const crossNodeA, crossNodeB = "xnode-a", "xnode-b"

// crossNode is the two-node scenario of the cross-node checksum tests: the
// testbed's namespaces joined by veth, a VXLAN device in each, a Node for
// each whose InternalIP is its underlay address, and the real API server
// reached from each namespace as the DaemonSet's service account with the
// shipped RBAC.
type crossNode struct {
	c                  *kubetest.Cluster
	a, b               *testbed.Side
	bin                string
	kubeconfig, server map[*testbed.Side]string
	interval           time.Duration
}

func newCrossNode(t testing.TB) *crossNode {
	t.Helper()
	privtest.Root(t)
	x := &crossNode{bin: nodetuneBinary(t), c: kubetest.ForTest(t), interval: 3 * time.Second,
		kubeconfig: map[*testbed.Side]string{}, server: map[*testbed.Side]string{}}
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := x.c.Kubectl(t, root, "apply", "--server-side", "-k", "deploy/overlays/remediate"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	ctx := context.Background()
	token, err := x.c.Token(ctx, "nodetune", "nodetune")
	if err != nil {
		t.Fatal(err)
	}
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntx"})
	x.a, x.b = bed.A, bed.B
	for side, name := range map[*testbed.Side]string{x.a: crossNodeA, x.b: crossNodeB} {
		n := x.c.CreateNode(t, name)
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: side.UnderlayIP.String()}}
		if _, err := x.c.Admin.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		var l net.Listener
		if err := side.Do(func() (err error) { l, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
			t.Fatal(err)
		}
		x.server[side] = x.c.Proxy(t, l)
		if x.kubeconfig[side], err = x.c.Kubeconfig(t.TempDir(), x.server[side], token); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// serve starts nodetune serve as node in side's namespace, probing every
// interval, and waits until it is ready.
func (x *crossNode) serve(t testing.TB, side *testbed.Side, node, mode string) *proc {
	t.Helper()
	p := startIn(t, side.NS, x.bin, "serve", "--mode="+mode, "--state-dir="+filepath.Join(t.TempDir(), "state"),
		"--kubeconfig="+x.kubeconfig[side], "--kube.node-name="+node, "--web.listen-address="+serveAddr,
		"--probe.interval="+x.interval.String(), "--probe.window=200ms", "--kube-proxy.url=", "--log.level=debug")
	client := nsClient(side)
	eventually(t, 10*time.Second, "nodetune /readyz in "+side.NS, func() error {
		_, err := getBody(client, "http://"+serveAddr+"/readyz")
		return err
	})
	return p
}

// verdict starts serve in observe mode on both nodes, sends tunnel packets
// with bad outer checksums from A to B's tunnel port, and returns how long
// after the first of them A's metrics showed tunnel-tx-checksum-unsafe on
// its tunnel, A's serve, and what stops the packets.
func (x *crossNode) verdict(t testing.TB) (time.Duration, *proc, func()) {
	t.Helper()
	unsafeA := `nodetune_finding{rule="` + rules.TunnelTxChecksumUnsafe + `",severity="critical",subject="` + x.a.Tunnel + `"}`
	observeA := x.serve(t, x.a, crossNodeA, "observe")
	x.serve(t, x.b, crossNodeB, "observe")
	clientA := nsClient(x.a)
	time.Sleep(2 * x.interval)
	if v := metricValue(t, clientA, unsafeA); v > 0 {
		t.Fatalf("A raised %s before any bad packet", unsafeA)
	}
	start := time.Now()
	stop := sendBadChecksums(t, x.a, x.b, 4789)
	eventually(t, 30*time.Second, "A's verdict", func() error {
		if v := metricValue(t, clientA, unsafeA); v != 1 {
			return fmt.Errorf("%s = %v", unsafeA, v)
		}
		return nil
	})
	return time.Since(start), observeA, stop
}

// BenchmarkCrossNodeChecksumVerdict is the time from a burst of bad tunnel
// checksums at the receiver B to the sender A's verdict, through B's
// capture, its Event on Node A and A's watch of them: at most two probe
// intervals.
//
//	make bench   (the probe interval is 3 s)
func BenchmarkCrossNodeChecksumVerdict(b *testing.B) {
	x := newCrossNode(b)
	var took time.Duration
	for b.Loop() {
		var stop func()
		took, _, stop = x.verdict(b)
		stop()
	}
	b.ReportMetric(took.Seconds(), "s-to-verdict")
	b.ReportMetric(took.Seconds()/x.interval.Seconds(), "probe-intervals")
	fmt.Printf("\nfrom the first bad packet at the receiver to the sender's verdict: %s, %.2f probe intervals of %s\n",
		took.Round(10*time.Millisecond), took.Seconds()/x.interval.Seconds(), x.interval)
	if took > 2*x.interval {
		b.Errorf("the sender's verdict took %s, more than two probe intervals (%s)", took, 2*x.interval)
	}
}
