package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nodetune/nodetune/rules"
)

// Controller is the reportingController of nodetune's events.
const Controller = "nodetune.io/nodetune"

// degradedAt is the least severe finding that makes a Node degraded: info
// findings are context, not a degradation.
const degradedAt = rules.Warning

// Options tune a Reporter.
type Options struct {
	// Log receives what the reporter does; nil discards it.
	Log *slog.Logger
	// SyncTimeout bounds how long Start waits for the first read of the
	// Node; zero means 30 seconds.
	SyncTimeout time.Duration
	// Instance names this reporter in its events' reportingInstance; empty
	// means "nodetune-<node name>".
	Instance string
}

// Reporter publishes nodetune's view of one Node to the API server: the
// NetworkPerformanceDegraded condition, events for remediations, and the
// per-node mode label.
type Reporter struct {
	client   *Client
	nodeName string
	opts     Options
	log      *slog.Logger

	// watch keeps the Node current.
	watch  *Watch[node]
	queue  chan event
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex
	// written is the condition of the last patch, and cachedRV the Node's
	// resourceVersion in the watch cache when it was made. While the cache
	// still holds that version it has not seen the patch, and written, not
	// the cache, is the Node's condition.
	written  *NodeCondition
	cachedRV string

	// modeMu guards badMode, the last mode label value warned about.
	modeMu  sync.Mutex
	badMode string

	// evMu guards closed, so that Event never sends on the closed queue.
	evMu   sync.Mutex
	closed bool
	// series are the recent events, by what makes them identical; only
	// the event writer uses it.
	series map[seriesKey]*event
}

// NewReporter returns a Reporter for the Node named nodeName, talking to
// the API server that cfg points at. Call Start before the other methods.
func NewReporter(cfg *Config, nodeName string, opts Options) (*Reporter, error) {
	if nodeName == "" {
		return nil, errors.New("kube: no node name (set NODE_NAME from the downward API, or pass --kube.node-name)")
	}
	if opts.SyncTimeout == 0 {
		opts.SyncTimeout = 30 * time.Second
	}
	if opts.Instance == "" {
		opts.Instance = "nodetune-" + nodeName
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	r := &Reporter{
		client:   client,
		nodeName: nodeName,
		opts:     opts,
		log:      log.With("node", nodeName),
		queue:    make(chan event, eventQueue),
		done:     make(chan struct{}),
		series:   map[seriesKey]*event{},
	}
	// A watch on this one Node: its labels (the mode) and its conditions.
	r.watch = NewWatch[node](client, Path("", "v1", "", "nodes", ""), nodeName, r.log)
	return r, nil
}

// Start watches the Node and starts the event writer. It waits up to
// Options.SyncTimeout for the first read of the Node and returns an error
// if there was none; the watch keeps trying in the background either way,
// until Close.
func (r *Reporter) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	go r.watch.Run(ctx)
	go r.writeEvents(ctx)
	select {
	case <-r.watch.Synced():
	case <-ctx.Done():
		return fmt.Errorf("watching Node %s: %w", r.nodeName, ctx.Err())
	case <-time.After(r.opts.SyncTimeout):
		return fmt.Errorf("watching Node %s: no answer from the API server within %s; still trying", r.nodeName, r.opts.SyncTimeout)
	}
	if _, ok := r.cached(); !ok {
		r.log.Warn("the Node is not registered (yet); its condition will be set once it is")
	}
	return nil
}

// Close stops the watch and the event writer, after giving queued events
// up to 5 seconds to be written.
func (r *Reporter) Close() {
	r.evMu.Lock()
	if r.closed || r.cancel == nil {
		r.evMu.Unlock()
		return
	}
	r.closed = true
	close(r.queue)
	r.evMu.Unlock()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		r.log.Warn("events still queued at exit were not written")
	}
	r.cancel()
}

// cached returns the Node from the watch cache.
func (r *Reporter) cached() (*node, bool) {
	return r.watch.Get()
}

// node returns the Node from the watch cache, or from the API server when
// the cache does not have it.
func (r *Reporter) node(ctx context.Context) (*node, error) {
	if n, ok := r.cached(); ok {
		return n, nil
	}
	n := &node{}
	err := r.client.Get(ctx, Path("", "v1", "", "nodes", r.nodeName), nil, n)
	if err != nil {
		return nil, fmt.Errorf("reading Node %s: %w", r.nodeName, err)
	}
	return n, nil
}

// Update sets the Node's NetworkPerformanceDegraded condition from
// findings. It writes only when the status, reason or message change, and
// keeps the last transition time while the status stays the same. It
// returns whether it wrote.
func (r *Reporter) Update(ctx context.Context, findings []rules.Finding) (bool, error) {
	want := Condition(findings, degradedAt)
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.node(ctx)
	if err != nil {
		return false, err
	}
	cur := findCondition(n.Status.Conditions, ConditionType)
	if r.written != nil && n.ResourceVersion == r.cachedRV {
		cur = r.written
	}
	if cur != nil && sameCondition(*cur, want) {
		return false, nil
	}
	now := NewTime(time.Now())
	want.LastHeartbeatTime = now
	want.LastTransitionTime = now
	if cur != nil && cur.Status == want.Status {
		want.LastTransitionTime = cur.LastTransitionTime
	}
	if err := r.patchCondition(ctx, want); err != nil {
		return false, err
	}
	r.written, r.cachedRV = &want, n.ResourceVersion
	r.log.Info("set the node condition", "type", want.Type, "status", want.Status, "reason", want.Reason, "message", want.Message)
	return true, nil
}

// patchCondition writes c into the Node's status. Node conditions merge by
// type in a strategic merge patch, so the kubelet's conditions and other
// agents' stay as they are.
func (r *Reporter) patchCondition(ctx context.Context, c NodeCondition) error {
	patch, err := json.Marshal(map[string]any{
		"status": map[string]any{"conditions": []NodeCondition{c}},
	})
	if err != nil {
		return fmt.Errorf("encoding the condition patch: %w", err)
	}
	err = r.client.Patch(ctx, Path("", "v1", "", "nodes", r.nodeName, "status"), StrategicMergePatch, patch, nil)
	if IsNotFound(err) {
		return fmt.Errorf("patching the status of Node %s: the Node does not exist: %w", r.nodeName, err)
	}
	if err != nil {
		return fmt.Errorf("patching the status of Node %s: %w", r.nodeName, err)
	}
	return nil
}
