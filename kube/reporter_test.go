package kube_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodetune/nodetune/kube"
	"github.com/nodetune/nodetune/kube/kubetest"
	"github.com/nodetune/nodetune/rules"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// deployed returns the cluster with the observe overlay applied, and a
// client configuration that authenticates as the DaemonSet's service
// account, so every test here runs with exactly the shipped RBAC.
func deployed(t *testing.T) (*kubetest.Cluster, string) {
	t.Helper()
	c := kubetest.Get(t)
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Kubectl(t, root, "apply", "--server-side", "-k", "deploy/overlays/observe"); err != nil {
		t.Fatalf("kubectl apply -k deploy/overlays/observe: %v\n%s", err, out)
	}
	token, err := c.Token(context.Background(), "nodetune", "nodetune")
	if err != nil {
		t.Fatal(err)
	}
	return c, token
}

func startReporter(t *testing.T, c *kubetest.Cluster, token, node string) *kube.Reporter {
	t.Helper()
	return startReporterLog(t, c, token, node, slog.New(slog.NewTextHandler(t.Output(), nil)))
}

// syncBuilder is a strings.Builder that the reporter's goroutines may
// write to while the test reads it.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startReporterLog(t *testing.T, c *kubetest.Cluster, token, node string, log *slog.Logger) *kube.Reporter {
	t.Helper()
	r, err := kube.NewReporter(clientConfig(c, token), node, kube.Options{SyncTimeout: 20 * time.Second, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); cancel() })
	return r
}

// eventually polls cond every 50 ms until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func condition(t *testing.T, c *kubetest.Cluster, node string) (*corev1.NodeCondition, *corev1.Node) {
	t.Helper()
	n, err := c.Admin.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == kube.ConditionType {
			return &n.Status.Conditions[i], n
		}
	}
	return nil, n
}

var offloadOff = rules.Finding{
	Rule:     rules.TunnelTxChecksumOff,
	Severity: rules.Critical,
	Subject:  "vxlan.calico",
	Summary:  "tx checksum offload is off on vxlan.calico",
	Impact:   rules.Impact{ThroughputLossRatio: 0.77},
}

func TestReporterCondition(t *testing.T) {
	c, token := deployed(t)
	ctx := context.Background()
	const node = "reporter-condition"
	c.CreateNode(t, node)
	// A kubelet's condition, which nodetune's patches must leave alone.
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}
	n, _ := c.Admin.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	n.Status.Conditions = []corev1.NodeCondition{ready}
	if _, err := c.Admin.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := startReporter(t, c, token, node)

	wrote, err := r.Update(ctx, []rules.Finding{offloadOff})
	if err != nil || !wrote {
		t.Fatalf("first Update = %v, %v; want a write", wrote, err)
	}
	got, n := condition(t, c, node)
	if got == nil || got.Status != corev1.ConditionTrue || got.Reason != "TunnelTxChecksumOff" || got.Message != kube.Message(offloadOff) {
		t.Fatalf("condition after the first update = %+v; want True/TunnelTxChecksumOff/%q", got, kube.Message(offloadOff))
	}
	if len(n.Status.Conditions) != 2 {
		t.Errorf("the Node has conditions %v; want the kubelet's Ready kept beside nodetune's", n.Status.Conditions)
	}
	firstTransition, rv := got.LastTransitionTime, n.ResourceVersion

	// Findings that differ only in their numbers, as every probe cycle's
	// do: no write, neither right away (the watch cache may not have seen
	// the first patch yet) nor once it has.
	for i := range 2 {
		again := offloadOff
		again.Summary = fmt.Sprintf("tx checksum offload is off on vxlan.calico (cycle %d)", i)
		again.Impact.ThroughputLossRatio = 0.7 + float64(i)/100
		if wrote, err := r.Update(ctx, []rules.Finding{again}); err != nil || wrote {
			t.Fatalf("repeated Update #%d = %v, %v; want no write", i, wrote, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if _, n := condition(t, c, node); n.ResourceVersion != rv {
		t.Errorf("the Node changed (resourceVersion %s -> %s) though the condition did not", rv, n.ResourceVersion)
	}

	// Same status, another worst finding: written, transition time kept.
	time.Sleep(1100 * time.Millisecond) // API times have a one-second grain
	changed := offloadOff
	changed.Subject = "flannel.1"
	if wrote, err := r.Update(ctx, []rules.Finding{changed}); err != nil || !wrote {
		t.Fatalf("Update with a new message = %v, %v; want a write", wrote, err)
	}
	got, _ = condition(t, c, node)
	if got.Message != kube.Message(changed) || !got.LastTransitionTime.Equal(&firstTransition) {
		t.Errorf("after a new message: %+v; want message %q and the transition time %v kept", got, kube.Message(changed), firstTransition)
	}

	// Nothing found: False, and a new transition time.
	if wrote, err := r.Update(ctx, nil); err != nil || !wrote {
		t.Fatalf("Update without findings = %v, %v; want a write", wrote, err)
	}
	got, _ = condition(t, c, node)
	if got.Status != corev1.ConditionFalse || got.Reason != kube.ReasonNoDegradation || !firstTransition.Before(&got.LastTransitionTime) {
		t.Errorf("after the findings cleared: %+v; want False/%s with a later transition than %v", got, kube.ReasonNoDegradation, firstTransition)
	}

	// Someone else rewrites the condition: nodetune puts its own back once
	// its watch has seen the change.
	n, _ = c.Admin.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == kube.ConditionType {
			n.Status.Conditions[i].Status = corev1.ConditionUnknown
		}
	}
	if _, err := c.Admin.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "nodetune restores its condition", func() bool {
		wrote, err := r.Update(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return wrote
	})
	if got, _ = condition(t, c, node); got.Status != corev1.ConditionFalse {
		t.Errorf("after the restore: %+v; want False", got)
	}
}

func TestReporterEvents(t *testing.T) {
	c, token := deployed(t)
	ctx := context.Background()
	const node = "reporter-events"
	created := c.CreateNode(t, node)
	r := startReporter(t, c, token, node)

	r.Event(kube.Applied, rules.TunnelTxChecksumOff, "vxlan0", "tx-checksum-ip-generic off -> on")
	r.Event(kube.Conflict, rules.TunnelTxChecksumOff, "vxlan0", "reverted 3 times in 60s by calico-node; no longer managed")

	var got []eventsv1.Event
	eventually(t, "both events are recorded", func() bool {
		l, err := c.Admin.EventsV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{
			FieldSelector: "regarding.name=" + node,
		})
		if err != nil {
			t.Fatal(err)
		}
		got = l.Items
		return len(got) == 2
	})
	want := map[string]string{"RemediationApplied": corev1.EventTypeNormal, "RemediationConflict": corev1.EventTypeWarning}
	for _, e := range got {
		typ, ok := want[e.Reason]
		if !ok || e.Type != typ {
			t.Errorf("event %s/%s (%q); want one of %v", e.Reason, e.Type, e.Note, want)
		}
		if e.Regarding.Kind != "Node" || e.Regarding.UID != created.UID {
			t.Errorf("event %s regards %+v; want Node %s with uid %s", e.Reason, e.Regarding, node, created.UID)
		}
		if e.ReportingController != kube.Controller {
			t.Errorf("event %s reported by %q; want %q", e.Reason, e.ReportingController, kube.Controller)
		}
		delete(want, e.Reason)
	}
	// The same event again, twice: it becomes a series of three on the
	// first, not two more events.
	r.Event(kube.Applied, rules.TunnelTxChecksumOff, "vxlan0", "tx-checksum-ip-generic off -> on")
	r.Event(kube.Applied, rules.TunnelTxChecksumOff, "vxlan0", "tx-checksum-ip-generic off -> on")
	eventually(t, "the repeats are counted", func() bool {
		l, err := c.Admin.EventsV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{
			FieldSelector: "regarding.name=" + node + ",reason=RemediationApplied",
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) != 1 {
			t.Fatalf("%d RemediationApplied events; want 1 with a series", len(l.Items))
		}
		return l.Items[0].Series != nil && l.Items[0].Series.Count == 3
	})
	// The events are visible the way `kubectl describe node` looks for them.
	core, err := c.Admin.CoreV1().Events("").List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + node + ",involvedObject.uid=" + string(created.UID),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(core.Items) != 2 {
		t.Errorf("the core events API shows %d events for the Node; want 2", len(core.Items))
	}
}

func TestReporterMode(t *testing.T) {
	c, token := deployed(t)
	ctx := context.Background()
	const node = "reporter-mode"
	c.CreateNode(t, node)
	logs := &syncBuilder{}
	r := startReporterLog(t, c, token, node, slog.New(slog.NewTextHandler(logs, nil)))
	if m, ok := r.Mode(); ok {
		t.Fatalf("Mode() = %q without a label; want none", m)
	}
	label := func(v string) {
		patch := []byte(`{"metadata":{"labels":{"` + kube.ModeLabel + `":"` + v + `"}}}`)
		if _, err := c.Admin.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	label(kube.ModeRemediate)
	eventually(t, "the label is seen", func() bool { m, ok := r.Mode(); return ok && m == kube.ModeRemediate })
	label(kube.ModeObserve)
	eventually(t, "the new value is seen", func() bool { m, ok := r.Mode(); return ok && m == kube.ModeObserve })
	label("fix-everything")
	eventually(t, "a bad value is ignored", func() bool { _, ok := r.Mode(); return !ok })
	for range 10 { // the serve loop asks every second
		r.Mode()
	}
	label("fix-it-all")
	eventually(t, "another bad value is ignored", func() bool {
		r.Mode()
		return strings.Count(logs.String(), "fix-it-all") > 0
	})
	for range 10 {
		r.Mode()
	}
	for _, v := range []string{"fix-everything", "fix-it-all"} {
		if n := strings.Count(logs.String(), "value="+v); n != 1 {
			t.Errorf("the bad label value %s was logged %d times, want once:\n%s", v, n, logs.String())
		}
	}
}

// clientConfig is nodetune's client configuration for the test cluster,
// authenticated with token.
func clientConfig(c *kubetest.Cluster, token string) *kube.Config {
	return &kube.Config{Host: c.URL, BearerToken: token, CAData: c.CAData, QPS: 100, Burst: 200}
}
