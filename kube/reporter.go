package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"

	"github.com/nodetune/nodetune/rules"
)

// Controller is the reportingController of nodetune's events and the field
// manager of its writes.
const Controller = "nodetune.io/nodetune"

// Options tune a Reporter.
type Options struct {
	// MinSeverity is the least severe finding that makes the node count as
	// degraded; the zero value means rules.Warning.
	MinSeverity rules.Severity
	// Log receives what the reporter does; nil discards it.
	Log *slog.Logger
	// SyncTimeout bounds how long Start waits for the first read of the
	// Node; zero means 30 seconds.
	SyncTimeout time.Duration
}

// Reporter publishes nodetune's view of one Node to the API server: the
// NetworkPerformanceDegraded condition, events for remediations, and the
// per-node mode label.
type Reporter struct {
	client   kubernetes.Interface
	nodeName string
	opts     Options
	log      *slog.Logger

	factory     informers.SharedInformerFactory
	nodes       listerscorev1.NodeLister
	synced      cache.InformerSynced
	broadcaster events.EventBroadcaster
	recorder    events.EventRecorder
	cancel      context.CancelFunc

	mu sync.Mutex
	// written is the condition of the last patch, and cachedRV the Node's
	// resourceVersion in the informer cache when it was made. While the
	// cache still holds that version it has not seen the patch, and
	// written, not the cache, is the Node's condition.
	written  *corev1.NodeCondition
	cachedRV string
}

// NewReporter returns a Reporter for the Node named nodeName, talking to
// the API server that cfg points at. Call Start before the other methods.
func NewReporter(cfg *rest.Config, nodeName string, opts Options) (*Reporter, error) {
	if nodeName == "" {
		return nil, errors.New("kube: no node name (set NODE_NAME from the downward API, or pass --kube.node-name)")
	}
	if opts.MinSeverity == rules.Info {
		opts.MinSeverity = rules.Warning
	}
	if opts.SyncTimeout == 0 {
		opts.SyncTimeout = 30 * time.Second
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "nodetune"
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", nodeName).String()
		}))
	informer := factory.Core().V1().Nodes()
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})
	return &Reporter{
		client:      client,
		nodeName:    nodeName,
		opts:        opts,
		log:         log.With("node", nodeName),
		factory:     factory,
		nodes:       informer.Lister(),
		synced:      informer.Informer().HasSynced,
		broadcaster: broadcaster,
		recorder:    broadcaster.NewRecorder(scheme.Scheme, Controller),
	}, nil
}

// NodeName is the name of the Node the reporter reports on.
func (r *Reporter) NodeName() string { return r.nodeName }

// Start watches the Node and starts recording events. It returns once the
// Node has been read (or found missing), or with an error when the API
// server cannot be reached within Options.SyncTimeout. Close stops it.
func (r *Reporter) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	if err := r.broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		cancel()
		return fmt.Errorf("starting the event recorder: %w", err)
	}
	r.factory.Start(ctx.Done())
	syncCtx, stop := context.WithTimeout(ctx, r.opts.SyncTimeout)
	defer stop()
	if !cache.WaitForCacheSync(syncCtx.Done(), r.synced) {
		r.Close()
		return fmt.Errorf("watching Node %s: no answer from the API server within %s", r.nodeName, r.opts.SyncTimeout)
	}
	if _, err := r.nodes.Get(r.nodeName); err != nil {
		r.log.Warn("the Node is not (yet) registered; its condition will be set once it is", "err", err)
	}
	return nil
}

// Close stops the watch and the event recorder. Events still queued may be
// lost.
func (r *Reporter) Close() {
	if r.cancel != nil {
		r.cancel()
	}
	r.broadcaster.Shutdown()
	r.factory.Shutdown()
}

// node returns the Node from the watch cache, or from the API server when
// the cache does not have it.
func (r *Reporter) node(ctx context.Context) (*corev1.Node, error) {
	n, err := r.nodes.Get(r.nodeName)
	if err == nil {
		return n, nil
	}
	n, err = r.client.CoreV1().Nodes().Get(ctx, r.nodeName, metav1.GetOptions{})
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
	want := Condition(findings, r.opts.MinSeverity)
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
	now := metav1.NewTime(time.Now())
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
func (r *Reporter) patchCondition(ctx context.Context, c corev1.NodeCondition) error {
	patch, err := json.Marshal(map[string]any{
		"status": map[string]any{"conditions": []corev1.NodeCondition{c}},
	})
	if err != nil {
		return fmt.Errorf("encoding the condition patch: %w", err)
	}
	_, err = r.client.CoreV1().Nodes().PatchStatus(ctx, r.nodeName, patch)
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("patching the status of Node %s: the Node does not exist: %w", r.nodeName, err)
	}
	if err != nil {
		return fmt.Errorf("patching the status of Node %s: %w", r.nodeName, err)
	}
	return nil
}

// ref is the object reference events about the Node point at.
func (r *Reporter) ref() *corev1.ObjectReference {
	ref := &corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: r.nodeName}
	if n, err := r.nodes.Get(r.nodeName); err == nil {
		ref.UID = n.UID
	} else {
		// The kubelet's own convention for events about its Node.
		ref.UID = types.UID(r.nodeName)
	}
	return ref
}
