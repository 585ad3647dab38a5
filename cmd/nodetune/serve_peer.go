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

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/kube"
	"github.com/nodetune/nodetune/peerstate"
)

// peerMeasureFunc measures the path between this node and the peer
// reachable at address (HOST or HOST:PORT), as bench --peer does.
type peerMeasureFunc func(ctx context.Context, peer string) (detect.PeerMeasurement, error)

// errPeerNotBuilt is the placeholder measurer's answer.
var errPeerNotBuilt = errors.New("peer measurement not built into this binary yet")

// newPeerMeasurer returns the measurer serve's schedule uses, which
// authenticates to the peers' responders with the token in tokenFile.
// Until the measurer lands, it is a placeholder that always fails, so the
// schedule runs, takes its Leases and reports the failure honestly.
// Wiring the real one is this one line.
var newPeerMeasurer = func(tokenFile string, log *slog.Logger) peerMeasureFunc {
	return func(context.Context, string) (detect.PeerMeasurement, error) {
		return detect.PeerMeasurement{}, errPeerNotBuilt
	}
}

// peerFlags are the options of serve's peer schedule.
type peerFlags struct {
	enable    bool
	tokenFile string
	interval  time.Duration
	timeout   time.Duration
	namespace string
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
	fs.BoolVar(&p.enable, "peer.enable", false, "measure the path to other nodes (and, with the responder, answer their measurements); needs --peer.token-file")
	fs.StringVar(&p.tokenFile, "peer.token-file", "", "file holding the token that peer measurements authenticate with")
	fs.DurationVar(&p.interval, "peer.interval", time.Hour, "mean time between this node's measurements of its peer in the ring (jittered by ±25%)")
	fs.DurationVar(&p.timeout, "peer.timeout", 5*time.Minute, "longest one measurement of a peer may take")
	fs.StringVar(&p.namespace, "peer.lease-namespace", "", "namespace of the peer measurement Leases (default: the pod's own namespace, else nodetune)")
}

func (p peerFlags) check() error {
	if !p.enable {
		return nil
	}
	switch {
	case p.tokenFile == "":
		return errors.New("--peer.enable needs --peer.token-file")
	case p.interval < minPeerInterval:
		return fmt.Errorf("--peer.interval is %s; want at least %s", p.interval, minPeerInterval)
	case p.timeout <= 0 || p.timeout > p.interval:
		return fmt.Errorf("--peer.timeout is %s; want it positive and at most --peer.interval (%s)", p.timeout, p.interval)
	}
	if _, err := os.Stat(p.tokenFile); err != nil {
		return fmt.Errorf("--peer.token-file: %w", err)
	}
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
	ns := p.leaseNamespace()
	s := &peerScheduler{
		self: self, interval: p.interval, timeout: p.timeout, leaseDuration: peerLeaseDuration,
		nodes: func(ctx context.Context) ([]kube.PeerNode, error) { return kube.PeerNodes(ctx, c) },
		newLease: func(name string) (*kube.Lease, error) {
			return kube.NewLease(c, ns, name, self, peerLeaseDuration)
		},
		measure: newPeerMeasurer(p.tokenFile, g.log),
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
	held, err := s.acquire(ctx, peerLeaseName(peer.Name), peerLeaseName(s.self))
	defer s.release(held)
	if err != nil || len(held) < 2 {
		return peerBusy, err
	}
	mctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	renewed := make(chan struct{})
	go func() { defer close(renewed); s.renew(mctx, cancel, held) }()
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
// duration, and ends the measurement (cancel) when one cannot be renewed:
// another contender may take it then.
func (s *peerScheduler) renew(ctx context.Context, cancel context.CancelFunc, held []*kube.Lease) {
	t := time.NewTicker(s.leaseDuration / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, l := range held {
			if ok, err := l.TryAcquireOrRenew(ctx); !ok || err != nil {
				if ctx.Err() == nil {
					s.log.Warn("lost a peer measurement Lease; stopping the measurement", "lease", l.Name(), "err", err)
					cancel()
				}
				return
			}
		}
	}
}

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
