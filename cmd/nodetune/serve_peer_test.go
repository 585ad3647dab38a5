package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/kube"
	"github.com/nodetune/nodetune/kube/kubetest"
	"github.com/nodetune/nodetune/peerstate"
)

// peerNodes registers Nodes as a kubelet and nodetune's agent would:
// Ready, with an InternalIP and nodetune's condition.
func peerNodes(t *testing.T, c *kubetest.Cluster, names ...string) {
	t.Helper()
	ctx := context.Background()
	for i, name := range names {
		n := c.CreateNode(t, name)
		n.Status.Conditions = []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()},
			{Type: kube.ConditionType, Status: corev1.ConditionFalse, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()},
		}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.99.0." + string(rune('1'+i))}}
		if _, err := c.Admin.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// scheduler returns node self's peer schedule against the cluster, as the
// DaemonSet's service account, with measure as its measurer and the
// results saved in a directory of its own.
func scheduler(t *testing.T, cfg *kube.Config, self string, measure peerMeasureFunc) (*peerScheduler, string) {
	t.Helper()
	c, err := kube.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return &peerScheduler{
		self: self, interval: time.Hour, timeout: 30 * time.Second, leaseDuration: 3 * time.Second,
		nodes: func(ctx context.Context) ([]kube.PeerNode, error) { return kube.PeerNodes(ctx, c) },
		newLease: func(name string) (*kube.Lease, error) {
			return kube.NewLease(c, "nodetune", name, self, 3*time.Second)
		},
		measure: measure,
		save:    func(m detect.PeerMeasurement) error { return peerstate.Save(dir, m) },
		log:     slog.New(slog.NewTextHandler(t.Output(), nil)),
	}, dir
}

// TestPeerSchedule runs the schedule's single runs against the real API
// server as the DaemonSet's service account:
//   - two agents whose ring names the same peer (a node joined, and one
//     has not seen it yet) start at once: only one measures, the other
//     finds the Lease busy;
//   - while a measures b, b cannot measure c (its own Lease is held);
//   - once a run ends its Leases are released and the next run goes at
//     once, and the result is saved under the peer's Node name;
//   - a run whose agent dies holding the Leases blocks others only until
//     the Leases expire.
func TestPeerSchedule(t *testing.T) {
	c := kubetest.ForTest(t)
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Kubectl(t, root, "apply", "--server-side", "-k", "deploy/overlays/observe"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	ctx := context.Background()
	token, err := c.Token(ctx, "nodetune", "nodetune")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &kube.Config{Host: c.URL, BearerToken: token, CAData: c.CAData, QPS: 100, Burst: 200}
	peerNodes(t, c, "peer-a", "peer-b", "peer-c")

	var running, most atomic.Int32
	release := make(chan struct{})
	started := make(chan string, 4)
	measure := func(ctx context.Context, addr string) (detect.PeerMeasurement, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		started <- addr
		select {
		case <-release:
		case <-ctx.Done():
			return detect.PeerMeasurement{}, ctx.Err()
		}
		return detect.PeerMeasurement{Device: "flannel.1", MTU: 1450, At: time.Now(), Cases: []detect.PeerCase{
			{Name: detect.PeerCaseHost, Direction: detect.PeerSend, BitsPerSecond: 9e9}}}, nil
	}
	// "peer-a2" is not a Node: its ring, like peer-a's, names peer-b.
	a, dirA := scheduler(t, cfg, "peer-a", measure)
	a2, dirA2 := scheduler(t, cfg, "peer-a2", measure)
	b, _ := scheduler(t, cfg, "peer-b", measure)

	outcomes := make(chan string, 2)
	var wg sync.WaitGroup
	for _, s := range []*peerScheduler{a, a2} {
		wg.Go(func() {
			o, err := s.runOnce(ctx)
			if err != nil {
				t.Errorf("%s: %v", s.self, err)
			}
			outcomes <- s.self + " " + o
		})
	}
	var addr string
	select {
	case addr = <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("nobody measured")
	}
	if addr != "10.99.0.2" {
		t.Errorf("measured %s; want peer-b's InternalIP 10.99.0.2", addr)
	}
	// The one that lost returns at once, busy, while the other measures.
	var busy string
	select {
	case busy = <-outcomes:
	case <-time.After(20 * time.Second):
		t.Fatal("the second contender did not give up")
	}
	if !strings.HasSuffix(busy, " busy") {
		t.Errorf("the second contender: %q; want busy", busy)
	}
	// b's own Lease is held by the run that measures it.
	if o, err := b.runOnce(ctx); o != peerBusy || err != nil {
		t.Errorf("peer-b measuring while being measured: %q, %v; want busy", o, err)
	}
	close(release)
	wg.Wait()
	close(outcomes)
	done := <-outcomes
	if !strings.HasSuffix(done, " measured") {
		t.Errorf("the winner: %q; want measured", done)
	}
	if most.Load() != 1 {
		t.Errorf("%d measurements ran at once; want 1", most.Load())
	}
	winnerDir := dirA
	if strings.HasPrefix(done, "peer-a2 ") {
		winnerDir = dirA2
	}
	saved, err := peerstate.Load(peerstate.Path(winnerDir))
	if err != nil || len(saved) != 1 || saved[0].Peer != "peer-b" || saved[0].Address != "10.99.0.2" {
		t.Errorf("saved %+v, %v; want one measurement of peer-b at 10.99.0.2", saved, err)
	}
	// Released: b measures c at once.
	if o, err := b.runOnce(ctx); o != peerMeasured || err != nil {
		t.Errorf("peer-b after the run ended: %q, %v; want measured", o, err)
	}
	if most.Load() != 1 {
		t.Errorf("%d measurements ran at once; want 1", most.Load())
	}

	// An agent that dies mid-run: it holds peer-b's and its own Lease and
	// never renews nor releases them. b is blocked until they expire.
	dead, _ := scheduler(t, cfg, "peer-a", measure)
	if held, err := dead.acquire(ctx, peerLeaseName("peer-b"), peerLeaseName("peer-a")); err != nil || len(held) != 2 {
		t.Fatalf("the dying agent took %d Leases: %v", len(held), err)
	}
	start := time.Now()
	if o, _ := b.runOnce(ctx); o != peerBusy {
		t.Errorf("peer-b while a dead run holds its Lease: %q; want busy", o)
	}
	for {
		o, err := b.runOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if o == peerMeasured {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("the dead run's Leases never expired")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if took := time.Since(start); took < 3*time.Second {
		t.Errorf("peer-b measured %s after the dead run took its Lease, before the Lease's 3s", took)
	}
}

// TestPeerScheduleMeasurerFails: a failed measurement is reported, saves
// nothing, and releases the Leases.
func TestPeerScheduleMeasurerFails(t *testing.T) {
	errRefused := errors.New("refused")
	m := func(context.Context, string) (detect.PeerMeasurement, error) {
		return detect.PeerMeasurement{}, errRefused
	}
	saved := 0
	s := &peerScheduler{
		self: "a", timeout: time.Second, leaseDuration: time.Second,
		nodes:    func(context.Context) ([]kube.PeerNode, error) { return []kube.PeerNode{{Name: "a"}}, nil },
		newLease: func(string) (*kube.Lease, error) { return nil, errors.New("no lease") },
		measure:  m,
		save:     func(detect.PeerMeasurement) error { saved++; return nil },
		log:      slog.New(slog.DiscardHandler),
	}
	if o, err := s.runOnce(context.Background()); o != peerNone || err != nil {
		t.Errorf("alone in the ring: %q, %v; want no peer", o, err)
	}
	// A Lease that cannot be had for an error (not because another run
	// holds it) is a failure, retried at the next interval, not every
	// couple of minutes as a busy one is.
	s.nodes = func(context.Context) ([]kube.PeerNode, error) { return []kube.PeerNode{{Name: "a"}, {Name: "b"}}, nil }
	if o, err := s.runOnce(context.Background()); o != peerFailed || err == nil {
		t.Errorf("Lease unavailable: %q, %v; want failed", o, err)
	}
	s.nodes = func(context.Context) ([]kube.PeerNode, error) { return nil, errors.New("forbidden") }
	if o, err := s.runOnce(context.Background()); o != peerFailed || err == nil {
		t.Errorf("nodes unreadable: %q, %v; want failed", o, err)
	}
	if saved != 0 {
		t.Errorf("saved %d measurements", saved)
	}
}

// TestPeerFlags: the schedule is off by default, and on only with a token.
func TestPeerFlags(t *testing.T) {
	if err := (peerFlags{}).check(false); err != nil {
		t.Errorf("off: %v", err)
	}
	for _, p := range []peerFlags{
		{enable: true, maxStreams: 4, maxDuration: time.Second, interval: time.Hour, timeout: time.Minute},
		{enable: true, maxStreams: 4, maxDuration: time.Second, tokenFile: "serve_peer_test.go", interval: time.Second, timeout: time.Second},
		{enable: true, maxStreams: 4, maxDuration: time.Second, tokenFile: "serve_peer_test.go", interval: time.Hour, timeout: 2 * time.Hour},
	} {
		if err := p.check(false); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := (peerFlags{enable: true, tokenFile: "serve_peer_test.go", interval: time.Hour, timeout: time.Minute, maxStreams: 4, maxDuration: time.Second}).check(false); err != nil {
		t.Errorf("a valid schedule refused: %v", err)
	}
	// The DaemonSet's peer Secret may hold no token yet: serve starts, and
	// refuses measurements until it does.
	if err := (peerFlags{enable: true, tokenFile: "/nonexistent/token", interval: time.Hour, timeout: time.Minute, maxStreams: 4, maxDuration: time.Second}).check(false); err != nil {
		t.Errorf("a token file not there yet: %v", err)
	}
}
