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
	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/exporter"
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

// kubeHook is a running Reporter and what feeds it; its methods do nothing
// on a nil hook, which is serve outside a cluster.
type kubeHook struct {
	rep    *kube.Reporter
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

// startKube connects serve to the API server, if there is one, and wraps
// opts.Remediator so remediations become events. It returns nil when
// serve runs outside a cluster without --kubeconfig.
func startKube(g *globals, k kubeFlags, mode string, exp *exporter.Exporter, opts *daemon.Options) (*kubeHook, error) {
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
	ctx, cancel := context.WithCancel(context.Background())
	h := &kubeHook{rep: rep, log: g.log, cancel: cancel, done: make(chan struct{})}
	if opts.Remediator != nil {
		opts.Remediator = &kubeRemediator{inner: opts.Remediator, hook: h}
	}
	go h.publish(ctx, exp, mode)
	g.log.Info("reporting to Kubernetes", "node", name, "condition", kube.ConditionType)
	return h, nil
}

// close stops publishing and writes the events still queued.
func (h *kubeHook) close() {
	if h == nil {
		return
	}
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

// publish keeps the node condition in step with the exporter's state,
// which the serve loop replaces after every cycle, and records an event
// when a remediation conflict appears.
func (h *kubeHook) publish(ctx context.Context, exp *exporter.Exporter, mode string) {
	defer close(h.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last *exporter.State
	conflicts := map[string]bool{}
	labelled := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if m, _ := h.rep.Mode(); m != labelled {
			labelled = m
			if m == kube.ModeRemediate && mode != kube.ModeRemediate {
				h.log.Warn("the Node's label asks for remediate mode, but this agent runs --mode=observe without the privileges to write; the label can only pause remediation", "label", kube.ModeLabel)
			}
		}
		st := exp.State()
		if st == nil || st == last {
			continue
		}
		last = st
		if _, err := h.rep.Update(ctx, st.Result.Findings); err != nil && ctx.Err() == nil {
			h.log.Warn("updating the node condition", "err", err)
		}
		now := map[string]bool{}
		for _, f := range st.Result.Findings {
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

// kubeRemediator records the outcome of each remediation as an event on
// the Node, and applies no fix while the Node is labelled
// nodetune.io/mode=observe. Rollback and reconcile always run.
type kubeRemediator struct {
	inner  daemon.Remediator
	hook   *kubeHook
	paused bool
}

// Apply applies the fixes unless the Node's label pauses remediation.
func (k *kubeRemediator) Apply(ctx context.Context, s *detect.Snapshot, findings []rules.Finding) ([]daemon.Outcome, error) {
	m, _ := k.hook.rep.Mode()
	if paused := m == kube.ModeObserve; paused != k.paused {
		k.paused = paused
		k.hook.log.Info("remediation on this node set by its label", "label", kube.ModeLabel, "value", m, "paused", paused)
	}
	if k.paused {
		return nil, nil
	}
	out, err := k.inner.Apply(ctx, s, findings)
	k.events(out)
	return out, err
}

// Rollback restores what nodetune changed.
func (k *kubeRemediator) Rollback(ctx context.Context) ([]daemon.Outcome, error) {
	out, err := k.inner.Rollback(ctx)
	k.events(out)
	return out, err
}

// Reconcile finishes what a nodetune that died mid-apply left behind.
func (k *kubeRemediator) Reconcile(ctx context.Context) ([]daemon.Outcome, error) {
	out, err := k.inner.Reconcile(ctx)
	k.events(out)
	return out, err
}

// Holdings lists the settings nodetune holds; the label does not change them.
func (k *kubeRemediator) Holdings(ctx context.Context) ([]daemon.Holding, error) {
	return k.inner.Holdings(ctx)
}

// events records one event per outcome that changed something or failed.
// Refusals and no-ops repeat every cycle and are left to the logs.
func (k *kubeRemediator) events(out []daemon.Outcome) {
	rep := k.hook.rep
	for _, o := range out {
		switch tune.Result(o.Result) {
		case tune.Verified:
			rep.Event(kube.Applied, o.Rule, o.Subject, o.Detail)
			rep.Event(kube.Verified, o.Rule, o.Subject, o.Detail)
		case tune.Restored:
			rep.Event(kube.RolledBack, o.Rule, o.Subject, o.Detail)
		case tune.Conflict:
			rep.Event(kube.Conflict, o.Rule, o.Subject, o.Detail)
		case tune.Failed, tune.Reverted:
			rep.Event(kube.Failed, o.Rule, o.Subject, o.Detail)
		}
	}
}
