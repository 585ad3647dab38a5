package main

// serve's peer schedule: with --peer.enable and a token, each agent
// measures the path to one other node at a time, the next node in a ring
// by name, every --peer.interval with jitter. A run holds two
// coordination.k8s.io Leases, the measured node's and its own
// (nodetune-peer-<node>), so that no node takes part in two runs at once
// anywhere in the cluster. The result is saved in the state directory,
// where the next probe cycle reads it into the snapshot: the rules, the
// metrics and doctor see it from there.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/nodetune/nodetune/bench"
	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/kube"
	"github.com/nodetune/nodetune/peerstate"
)

// peerMeasureFunc measures the path between this node and the peer
// reachable at address (HOST or HOST:PORT), as bench --peer does.
type peerMeasureFunc func(ctx context.Context, peer string) (detect.PeerMeasurement, error)

// newPeerMeasurer returns the measurer serve's schedule uses: bench
// --peer's, authenticated with the token in --peer.token-file, over HTTPS
// when --peer.tls-ca-file is given, through this node's CNI tunnel
// (--peer.device, else the one bench picks).
func newPeerMeasurer(g *globals, p peerFlags) (peerMeasureFunc, error) {
	tc, err := peerTLS(p.caFile)
	if err != nil {
		return nil, err
	}
	c, err := bench.NewPeerClient(bench.PeerOptions{
		TokenFile: p.tokenFile, Tunnels: g.nodeTunnels, Device: p.device, TLS: tc,
		ProcFS: g.paths.ProcFS, Log: g.log,
	})
	if err != nil {
		return nil, err
	}
	return c.Measure, nil
}

// peerFlags are the options of serve's peer measurements: the responder
// (serve_peer_responder.go) and the schedule.
type peerFlags struct {
	enable      bool
	tokenFile   string
	listen      string
	webConfig   string
	device      string
	maxStreams  int
	maxDuration time.Duration
	caFile      string
	interval    time.Duration
	timeout     time.Duration
	namespace   string
}

// Bounds of the schedule's flags.
const (
	minPeerInterval = time.Minute
	// peerLeaseDuration is how long a run's Leases hold without renewal:
	// a node that dies mid-run frees them after this long.
	peerLeaseDuration = 60 * time.Second
	// peerBusyRetry is the mean wait before trying again when a Lease is
	// held by another run.
	peerBusyRetry = 2 * time.Minute
)

func (p *peerFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&p.enable, "peer.enable", false, "answer peer measurements from other nodes' nodetune (bench --peer) on --peer.listen-address and, in a cluster, measure the next node in the ring every --peer.interval; needs --peer.token-file")
	fs.StringVar(&p.tokenFile, "peer.token-file", "", "file holding the token peer measurements (and POST /bench) must carry; read again on every request, so a rotated Secret works without a restart")
	fs.StringVar(&p.listen, "peer.listen-address", defaultPeerListen, "address the responder listens on")
	fs.StringVar(&p.webConfig, "peer.web.config.file", "", "exporter-toolkit web configuration for the responder's port (TLS); may be the --web.config.file of /metrics when that holds TLS only")
	fs.StringVar(&p.device, "peer.device", "", "the CNI tunnel device the tunnel case measures (default: the first IPv4 tunnel that is up)")
	fs.IntVar(&p.maxStreams, "peer.max-streams", bench.MaxPeerStreams, "most TCP streams a measurer may open per case")
	fs.DurationVar(&p.maxDuration, "peer.max-duration", bench.MaxPeerDuration, "longest measuring window a measurer may ask per case")
	fs.StringVar(&p.caFile, "peer.tls-ca-file", "", "the schedule talks HTTPS to the other nodes' responders, verifying them with this CA bundle (for responders with --peer.web.config.file)")
	fs.DurationVar(&p.interval, "peer.interval", time.Hour, "mean time between this node's measurements of its peer in the ring (jittered by ±25%)")
	fs.DurationVar(&p.timeout, "peer.timeout", 5*time.Minute, "longest one measurement of a peer may take")
	fs.StringVar(&p.namespace, "peer.lease-namespace", "", "namespace of the peer measurement Leases (default: the pod's own namespace, else nodetune)")
}

func (p peerFlags) check(enableBench bool) error {
	switch {
	case p.enable && p.tokenFile == "":
		return errors.New("--peer.enable needs --peer.token-file: the responder answers no one without a token")
	case enableBench && p.tokenFile == "":
		return errors.New("--web.enable-bench needs --peer.token-file: POST /bench takes the same token as peer measurements")
	case !p.enable:
		return nil
	case p.maxStreams < 1 || p.maxStreams > bench.MaxPeerStreams:
		return fmt.Errorf("--peer.max-streams: want 1 to %d", bench.MaxPeerStreams)
	case p.maxDuration <= 0 || p.maxDuration > bench.MaxPeerDuration:
		return fmt.Errorf("--peer.max-duration: want up to %s", bench.MaxPeerDuration)
	case p.interval < minPeerInterval:
		return fmt.Errorf("--peer.interval is %s; want at least %s", p.interval, minPeerInterval)
	case p.timeout <= 0 || p.timeout > p.interval:
		return fmt.Errorf("--peer.timeout is %s; want it positive and at most --peer.interval (%s)", p.timeout, p.interval)
	}
	// A token file that does not exist yet is no error: the DaemonSet
	// mounts the peer Secret whole and optional, and the operator may put
	// the token in later. Until then the responder refuses every request
	// and the schedule's measurements fail, each saying why; both read the
	// file again each time.
	return nil
}

// serviceAccountNamespace is where the kubelet writes the pod's namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// leaseNamespace is the flag's namespace, else the pod's, else nodetune.
func (p peerFlags) leaseNamespace() string {
	if p.namespace != "" {
		return p.namespace
	}
	if b, err := os.ReadFile(serviceAccountNamespace); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b))
	}
	return "nodetune"
}

// startPeerSchedule starts the schedule when it is enabled and serve runs
// in a cluster; the returned func stops it and waits for it.
func startPeerSchedule(ctx context.Context, g *globals, p peerFlags, k kubeFlags, stateDir string) (func(), error) {
	if !p.enable {
		return func() {}, nil
	}
	self := k.nodeName
	if self == "" {
		self = os.Getenv("NODE_NAME")
	}
	cfg, err := kube.RESTConfig(k.kubeconfig)
	if errors.Is(err, kube.ErrNoCluster) || err == nil && self == "" {
		g.log.Warn("--peer.enable: no cluster or no node name, so no peer schedule (bench --peer measures by hand)")
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("peer schedule: %w", err)
	}
	c, err := kube.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("peer schedule: %w", err)
	}
	measure, err := newPeerMeasurer(g, p)
	if err != nil {
		return nil, fmt.Errorf("peer schedule: %w", err)
	}
	ns := p.leaseNamespace()
	s := &peerScheduler{
		self: self, interval: p.interval, timeout: p.timeout, leaseDuration: peerLeaseDuration,
		nodes: func(ctx context.Context) ([]kube.PeerNode, error) { return kube.PeerNodes(ctx, c) },
		newLease: func(name string) (*kube.Lease, error) {
			return kube.NewLease(c, ns, name, self, peerLeaseDuration)
		},
		measure: measure,
		save:    func(m detect.PeerMeasurement) error { return peerstate.Save(stateDir, m) },
		log:     g.log.With("component", "peer-schedule"),
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx) }()
	g.log.Info("measuring peers", "node", self, "interval", p.interval, "lease_namespace", ns)
	return func() { cancel(); <-done }, nil
}

// peerScheduler runs the measurements of one node's peer.
type peerScheduler struct {
	self          string
	interval      time.Duration
	timeout       time.Duration
	leaseDuration time.Duration
	nodes         func(ctx context.Context) ([]kube.PeerNode, error)
	newLease      func(name string) (*kube.Lease, error)
	measure       peerMeasureFunc
	save          func(detect.PeerMeasurement) error
	log           *slog.Logger

	mu sync.Mutex
	// leases are kept by name for the process's life: a contender times
	// another's Lease from when it first saw its record (as client-go's
	// leaderelection does), so a new object per try would never see one
	// expire.
	leases map[string]*kube.Lease
}

// peerLeaseName is the Lease of node.
func peerLeaseName(node string) string { return "nodetune-peer-" + node }

// jitter returns d scaled by a random factor in [1-f, 1+f).
func jitter(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * (1 - f + 2*f*rand.Float64()))
}

// run measures until ctx ends: the first run after a random share of the
// interval (so that agents started together spread out), then every
// interval ±25%, sooner when a Lease was busy.
func (s *peerScheduler) run(ctx context.Context) {
	wait := time.Duration(float64(s.interval) * rand.Float64())
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		outcome, err := s.runOnce(ctx)
		switch {
		case err != nil:
			s.log.Warn("peer measurement failed", "outcome", outcome, "err", err)
		default:
			s.log.Debug("peer measurement", "outcome", outcome)
		}
		wait = jitter(s.interval, 0.25)
		if outcome == peerBusy {
			wait = jitter(peerBusyRetry, 0.5)
		}
	}
}

// Outcomes of one run.
const (
	peerNone     = "no peer"
	peerBusy     = "busy"
	peerMeasured = "measured"
	peerFailed   = "failed"
)

func (s *peerScheduler) lease(name string) (*kube.Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.leases[name]; ok {
		return l, nil
	}
	l, err := s.newLease(name)
	if err != nil {
		return nil, err
	}
	if s.leases == nil {
		s.leases = map[string]*kube.Lease{}
	}
	s.leases[name] = l
	return l, nil
}

// runOnce measures the next node in the ring if both its Lease and this
// node's can be had, and saves the result.
func (s *peerScheduler) runOnce(ctx context.Context) (string, error) {
	nodes, err := s.nodes(ctx)
	if err != nil {
		return peerFailed, err
	}
	peer, ok := kube.NextPeer(s.self, nodes)
	if !ok {
		return peerNone, nil
	}
	since := time.Now() // no later than the Leases' first write
	held, err := s.acquire(ctx, peerLeaseName(peer.Name), peerLeaseName(s.self))
	defer s.release(held)
	if err != nil {
		return peerFailed, err // the API's answer says nothing about who holds it
	}
	if len(held) < 2 {
		return peerBusy, nil
	}
	mctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	renewed := make(chan struct{})
	go func() { defer close(renewed); s.renew(mctx, cancel, held, since) }()
	m, err := s.measure(mctx, peer.Address)
	cancel()
	<-renewed
	if err != nil {
		return peerFailed, fmt.Errorf("measuring %s (%s): %w", peer.Name, peer.Address, err)
	}
	m.Peer = peer.Name
	if m.Address == "" {
		m.Address = peer.Address
	}
	if err := s.save(m); err != nil {
		return peerFailed, err
	}
	s.log.Info("measured the path to a peer", "peer", peer.Name, "address", peer.Address, "cases", len(m.Cases))
	return peerMeasured, nil
}

// acquire takes the named Leases in order and returns those it holds; it
// stops at the first it cannot have.
func (s *peerScheduler) acquire(ctx context.Context, names ...string) ([]*kube.Lease, error) {
	var held []*kube.Lease
	for _, n := range names {
		l, err := s.lease(n)
		if err != nil {
			return held, err
		}
		ok, err := l.TryAcquireOrRenew(ctx)
		if err != nil || !ok {
			if !ok && err == nil {
				s.log.Debug("a peer measurement Lease is held elsewhere", "lease", n, "holder", l.Holder())
			}
			return held, err
		}
		held = append(held, l)
	}
	return held, nil
}

// renew keeps the Leases while the measurement runs, every third of their
// duration, and ends the measurement (cancel) when one cannot be renewed,
// or when they are not all renewed within two thirds of their duration of
// the start of the last write that held them (since, at first). Another
// contender times a Lease from when it saw that write, so it may take it
// a full duration later; a renewal left to wait for the API client's own
// timeout would go on measuring past that (client-go's leaderelection
// gives up leading at its renew deadline in the same way).
func (s *peerScheduler) renew(ctx context.Context, cancel context.CancelFunc, held []*kube.Lease, since time.Time) {
	deadline := since.Add(s.renewDeadline())
	t := time.NewTicker(s.leaseDuration / 3)
	defer t.Stop()
	lost := func(l *kube.Lease, err error) {
		if ctx.Err() == nil {
			s.log.Warn("lost a peer measurement Lease; stopping the measurement", "lease", l.Name(), "err", err)
			cancel()
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(deadline)):
			lost(held[0], errors.New("not renewed in time"))
			return
		case <-t.C:
		}
		start := time.Now()
		rctx, rcancel := context.WithDeadline(ctx, deadline)
		for _, l := range held {
			if ok, err := l.TryAcquireOrRenew(rctx); !ok || err != nil {
				rcancel()
				lost(l, err)
				return
			}
		}
		rcancel()
		deadline = start.Add(s.renewDeadline())
	}
}

// renewDeadline is how long after the start of a write that held the
// Leases the next must have succeeded: two thirds of their duration, as
// client-go's defaults (10 s of 15), leaving a third for the measurement
// to stop.
func (s *peerScheduler) renewDeadline() time.Duration { return s.leaseDuration * 2 / 3 }

// release gives the Leases up, on a context of its own: the run's may
// have ended.
func (s *peerScheduler) release(held []*kube.Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, l := range held {
		if err := l.Release(ctx); err != nil {
			s.log.Warn("could not release a peer measurement Lease; it expires by itself", "lease", l.Name(), "err", err)
		}
	}
}
