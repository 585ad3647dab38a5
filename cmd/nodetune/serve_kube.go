package main

// The Kubernetes side of nodetune serve, kept apart from serve.go: with
// --kubeconfig, or when running in a cluster, serve keeps the Node's
// NetworkPerformanceDegraded condition, records events for remediations,
// and lets the Node's nodetune.io/mode=observe label pause remediation.
// Without either, none of this runs.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/kube"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// kubeFlags are serve's Kubernetes options.
type kubeFlags struct {
	kubeconfig string
	nodeName   string
}

func (k *kubeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file of the cluster to report to; empty uses the in-cluster configuration when running in a pod with a node name, and reports nowhere otherwise")
	fs.StringVar(&k.nodeName, "kube.node-name", "", "the Node to report on (default $NODE_NAME, else, with --kubeconfig, the host name)")
}

// kubeHook is a running Reporter and what feeds it: it is one of the
// daemon's outputs (daemon.Publisher). Its methods do nothing on a nil
// hook, which is serve outside a cluster.
type kubeHook struct {
	rep  *kube.Reporter
	log  *slog.Logger
	mode string
	// next holds the newest cycle not yet written to the Node; a newer
	// one replaces it, so a slow API server delays the condition but
	// never the daemon.
	next   chan *daemon.Cycle
	cancel context.CancelFunc
	done   chan struct{}
	// paused and labelled are the label as last seen by Paused and by
	// the check of each cycle.
	paused   bool
	labelled string
	// csum reports bad tunnel checksums to their senders' Nodes and
	// reads those reported about this one.
	csum *checksumHook
}

// startKube connects serve to the API server, if there is one, and adds
// the Node as an output of opts: its condition follows each cycle, each
// remediation becomes an event, and its label can pause remediation. It
// returns nil when serve runs outside a cluster without --kubeconfig.
func startKube(g *globals, k kubeFlags, mode string, opts *daemon.Options) (*kubeHook, error) {
	name := k.nodeName
	if name == "" {
		name = os.Getenv("NODE_NAME")
	}
	if name == "" && k.kubeconfig == "" {
		// In a pod that is not nodetune's DaemonSet (a debug pod, a CI
		// job), the in-cluster configuration exists too; without a node
		// name from the downward API, serve reports nowhere.
		g.log.Debug("no --kubeconfig and no node name ($NODE_NAME or --kube.node-name): no node condition or events")
		return nil, nil
	}
	cfg, err := kube.RESTConfig(k.kubeconfig)
	switch {
	case errors.Is(err, kube.ErrNoCluster):
		g.log.Debug("not in a Kubernetes cluster and no --kubeconfig: no node condition or events")
		return nil, nil
	case err != nil && k.kubeconfig == "":
		// A pod without its service-account token, say: the agent's
		// metrics are still worth serving.
		g.log.Error("cannot report to Kubernetes; serving metrics only", "err", err)
		return nil, nil
	case err != nil:
		return nil, err
	}
	if name == "" {
		name, _ = os.Hostname()
	}
	rep, err := kube.NewReporter(cfg, name, kube.Options{Log: g.log, SyncTimeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	// The reporter outlives serve's context: the rollback on exit runs
	// after it ends, and its events must still be written. rep.Close
	// stops it.
	if err := rep.Start(context.Background()); err != nil {
		g.log.Warn("the API server does not answer yet; serving metrics meanwhile", "err", err)
	}
	h := newKubeHook(rep, g.log, mode)
	opts.Outputs = append(opts.Outputs, h)
	// Cross-node checksum evidence (serve_events.go).
	if h.csum, err = startChecksumEvents(cfg, name, g.log, opts); err != nil {
		h.close()
		return nil, err
	}
	if opts.Remediator != nil {
		opts.Paused = h.Paused
	}
	g.log.Info("reporting to Kubernetes", "node", name, "condition", kube.ConditionType)
	return h, nil
}

// newKubeHook starts writing the cycles handed to the hook to rep.
func newKubeHook(rep *kube.Reporter, log *slog.Logger, mode string) *kubeHook {
	ctx, cancel := context.WithCancel(context.Background())
	h := &kubeHook{rep: rep, log: log, mode: mode, next: make(chan *daemon.Cycle, 1), cancel: cancel, done: make(chan struct{})}
	go h.run(ctx)
	return h
}

// close stops publishing and writes the events still queued.
func (h *kubeHook) close() {
	if h == nil {
		return
	}
	h.csum.close()
	h.cancel()
	<-h.done
	h.rep.Close()
}

// journalUnusable records on the Node that remediation is off because the
// journal in stateDir cannot be used.
func (h *kubeHook) journalUnusable(stateDir string, err error) {
	if h == nil {
		return
	}
	h.rep.Event(kube.JournalUnusable, "", stateDir,
		fmt.Sprintf("remediation is off, the agent only observes: the journal in %s cannot be used: %v", stateDir, err))
}

// Publish hands c to the goroutine that writes the Node's condition, in
// place of a cycle it has not written yet. It does not wait for the API
// server.
func (h *kubeHook) Publish(c *daemon.Cycle) {
	for {
		select {
		case h.next <- c:
			return
		default:
		}
		select {
		case <-h.next: // superseded by c
		default:
		}
	}
}

// run keeps the node condition in step with each cycle as it is
// published, and records an event when a remediation conflict appears.
func (h *kubeHook) run(ctx context.Context) {
	defer close(h.done)
	conflicts := map[string]bool{}
	for {
		var c *daemon.Cycle
		select {
		case <-ctx.Done():
			return
		case c = <-h.next:
		}
		h.checkLabel()
		if _, err := h.rep.Update(ctx, c.Result.Findings); err != nil && ctx.Err() == nil {
			h.log.Warn("updating the node condition", "err", err)
		}
		now := map[string]bool{}
		for _, f := range c.Result.Findings {
			if f.Rule != rules.RemediationConflict {
				continue
			}
			now[f.Subject] = true
			if !conflicts[f.Subject] {
				h.rep.Event(kube.Conflict, f.Rule, f.Subject, f.Summary)
			}
		}
		conflicts = now
	}
}

// checkLabel warns when the Node's label asks for more than this agent
// can do.
func (h *kubeHook) checkLabel() {
	m, _ := h.rep.Mode()
	if m == h.labelled {
		return
	}
	h.labelled = m
	if m == kube.ModeRemediate && h.mode != kube.ModeRemediate {
		h.log.Warn("the Node's label asks for remediate mode, but this agent runs --mode=observe without the privileges to write; the label can only pause remediation", "label", kube.ModeLabel)
	}
}

// Paused reports whether the Node's label nodetune.io/mode=observe pauses
// remediation on this node. The daemon asks it before each apply;
// rollback and reconcile always run.
func (h *kubeHook) Paused() bool {
	m, _ := h.rep.Mode()
	if paused := m == kube.ModeObserve; paused != h.paused {
		h.paused = paused
		h.log.Info("remediation on this node set by its label", "label", kube.ModeLabel, "value", m, "paused", paused)
	}
	return h.paused
}

// Remediated records one event per outcome that changed something or
// failed. Refusals and no-ops repeat every cycle and are left to the logs.
func (h *kubeHook) Remediated(r *daemon.Remediation) {
	for _, o := range r.Outcomes {
		switch o.Result {
		case tune.Verified:
			h.rep.Event(kube.Applied, o.Rule, o.Subject, o.Detail)
			h.rep.Event(kube.Verified, o.Rule, o.Subject, o.Detail)
		case tune.Restored:
			h.rep.Event(kube.RolledBack, o.Rule, o.Subject, o.Detail)
		case tune.Conflict:
			h.rep.Event(kube.Conflict, o.Rule, o.Subject, o.Detail)
		case tune.Failed, tune.Reverted:
			h.rep.Event(kube.Failed, o.Rule, o.Subject, o.Detail)
		}
	}
}
