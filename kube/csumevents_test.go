package kube_test

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/kube"
	"github.com/nodetune/nodetune/kube/kubetest"
)

func annotations() map[string]string {
	return map[string]string{
		kube.AnnotationSource:      "10.0.0.1",
		kube.AnnotationPort:        "4789",
		kube.AnnotationReceiver:    "node-b",
		kube.AnnotationCount:       "12",
		kube.AnnotationWindowStart: "2026-11-27T12:00:00Z",
		kube.AnnotationWindowEnd:   "2026-11-27T12:00:30.5Z",
	}
}

func TestParseReportAnnotations(t *testing.T) {
	got, err := kube.ParseReportAnnotations(annotations())
	if err != nil {
		t.Fatal(err)
	}
	want := detect.ChecksumReport{Receiver: "node-b", Source: netip.MustParseAddr("10.0.0.1"), DstPort: 4789, Count: 12,
		First: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), Last: time.Date(2026, 11, 27, 12, 0, 30, 5e8, time.UTC)}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	a := annotations()
	a[kube.AnnotationSource] = "::ffff:10.0.0.1"
	if got, err := kube.ParseReportAnnotations(a); err != nil || got.Source != want.Source {
		t.Errorf("an IPv4-mapped source: %v, %v; want %s", got.Source, err, want.Source)
	}
	for _, tt := range []struct{ key, value string }{
		{kube.AnnotationSource, ""},
		{kube.AnnotationSource, "node-a"},
		{kube.AnnotationSource, "fe80::1%eth0"},
		{kube.AnnotationPort, "0"},
		{kube.AnnotationPort, "65536"},
		{kube.AnnotationPort, "-1"},
		{kube.AnnotationReceiver, ""},
		{kube.AnnotationCount, "many"},
		{kube.AnnotationCount, "-3"},
		{kube.AnnotationWindowStart, "yesterday"},
		{kube.AnnotationWindowEnd, "2026-11-27T11:59:00Z"}, // before the start
	} {
		a := annotations()
		if tt.value == "" {
			delete(a, tt.key)
		} else {
			a[tt.key] = tt.value
		}
		if _, err := kube.ParseReportAnnotations(a); !errors.Is(err, kube.ErrBadReport) {
			t.Errorf("%s=%q: err = %v; want ErrBadReport", tt.key, tt.value, err)
		}
	}
}

// FuzzParseReportAnnotations: whatever another agent (or anyone allowed
// to create events) wrote, parsing says what is wrong or returns a report
// whose window is in order; it never panics.
func FuzzParseReportAnnotations(f *testing.F) {
	a := annotations()
	f.Add(a[kube.AnnotationSource], a[kube.AnnotationPort], a[kube.AnnotationReceiver], a[kube.AnnotationCount],
		a[kube.AnnotationWindowStart], a[kube.AnnotationWindowEnd])
	f.Add("fd00::1", "8472", "n", "18446744073709551615", "2026-01-01T00:00:00+01:00", "2026-01-01T00:00:00+01:00")
	f.Add("", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, src, port, recv, count, start, end string) {
		r, err := kube.ParseReportAnnotations(map[string]string{
			kube.AnnotationSource: src, kube.AnnotationPort: port, kube.AnnotationReceiver: recv,
			kube.AnnotationCount: count, kube.AnnotationWindowStart: start, kube.AnnotationWindowEnd: end,
		})
		if err != nil {
			if !errors.Is(err, kube.ErrBadReport) {
				t.Errorf("error %v does not wrap ErrBadReport", err)
			}
			return
		}
		if !r.Source.IsValid() || r.Source.Is4In6() || r.DstPort == 0 || r.Last.Before(r.First) || r.Receiver == "" {
			t.Errorf("accepted a report that is not one: %+v", r)
		}
	})
}

// nodeWithAddress registers a Node with addr as its InternalIP.
func nodeWithAddress(t *testing.T, c *kubetest.Cluster, name, addr string) {
	t.Helper()
	n := c.CreateNode(t, name)
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: addr}, {Type: corev1.NodeHostName, Address: name}}
	if _, err := c.Admin.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func checksumEvents(t *testing.T, c *kubetest.Cluster, token, node string) *kube.ChecksumEvents {
	t.Helper()
	e, err := kube.NewChecksumEvents(&kube.Config{Host: c.URL, BearerToken: token, CAData: c.CAData, QPS: 100, Burst: 200}, node, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestChecksumEventsAsTheAgent runs the exchange against the real API
// server as the DaemonSet's service account, with the shipped RBAC: node
// B traces bad tunnel packets to node A's InternalIP and records one
// Event on Node A, which it updates rather than repeats, even after a
// restart; packets from an address that is no Node's, or B's own, record
// nothing; A reads the report back, and only reports about itself.
func TestChecksumEventsAsTheAgent(t *testing.T) {
	c, token := deployed(t)
	ctx := context.Background()
	const a, b = "csum-node-a", "csum-node-b"
	nodeWithAddress(t, c, a, "10.77.0.1")
	nodeWithAddress(t, c, b, "10.77.0.2")
	t.Cleanup(func() {
		_ = c.Admin.EventsV1().Events("default").DeleteCollection(context.Background(), metav1.DeleteOptions{},
			metav1.ListOptions{FieldSelector: "reason=" + kube.ChecksumReason})
	})
	// A watches the reports about itself from the start.
	watcher := checksumEvents(t, c, token, a)
	changed := make(chan struct{}, 100)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go watcher.WatchReports(wctx, func() { changed <- struct{}{} })
	select {
	case <-changed: // the first list
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not list the reports")
	}
	if rs := watcher.Reports(ctx); rs.Err.Failed() || len(rs.Reports) != 0 {
		t.Fatalf("reports before any: %+v", rs)
	}

	now := time.Now()
	clock := func() time.Time { return now }
	recv := checksumEvents(t, c, token, b)
	kube.SetClock(recv, clock)
	src := func(addr string, n uint64) []detect.BadChecksumSource {
		return []detect.BadChecksumSource{{Addr: netip.MustParseAddr(addr), DstPort: 4789, Tunnel: "vxlan0", Count: n}}
	}
	record := func(e *kube.ChecksumEvents, addr string, n uint64) {
		t.Helper()
		if err := e.Record(ctx, src(addr, n), now.Add(-time.Second), now); err != nil {
			t.Fatal(err)
		}
	}
	record(recv, "10.77.0.1", 5)
	record(recv, "192.0.2.99", 7) // no Node's
	record(recv, "10.77.0.2", 7)  // B's own
	events := func() []eventsv1.Event {
		t.Helper()
		l, err := c.Admin.EventsV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "reason=" + kube.ChecksumReason})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	evs := events()
	if len(evs) != 1 || evs[0].Regarding.Name != a || evs[0].Regarding.Kind != "Node" || evs[0].Type != "Warning" {
		t.Fatalf("want one Warning event on Node %s, got %+v", a, evs)
	}
	if got := evs[0].Annotations[kube.AnnotationCount]; got != "5" {
		t.Errorf("count %s, want 5", got)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not see the new report")
	}
	if rs := watcher.Reports(ctx); rs.Err.Failed() || len(rs.Reports) != 1 || rs.Reports[0].Count != 5 {
		t.Errorf("watched reports: %+v", rs)
	}

	// Within minReportUpdate the packets add up; after it, one write.
	now = now.Add(2 * time.Second)
	record(recv, "10.77.0.1", 3)
	if got := events()[0].Annotations[kube.AnnotationCount]; got != "5" {
		t.Errorf("written again within the update interval: count %s", got)
	}
	now = now.Add(20 * time.Second)
	record(recv, "10.77.0.1", 2)
	evs = events()
	if len(evs) != 1 || evs[0].Annotations[kube.AnnotationCount] != "10" || evs[0].Series == nil || evs[0].Series.Count != 2 {
		t.Fatalf("want the one event updated to 10 packets in a series of 2, got %d events: %+v", len(evs), evs)
	}

	// A restarted agent carries on with the same event.
	now = now.Add(20 * time.Second)
	again := checksumEvents(t, c, token, b)
	kube.SetClock(again, clock)
	record(again, "10.77.0.1", 4)
	evs = events()
	if len(evs) != 1 || evs[0].Annotations[kube.AnnotationCount] != "14" || evs[0].Series.Count != 3 {
		t.Fatalf("after a restart: want the one event at 14 packets in a series of 3, got %+v", evs)
	}

	// A reads it; B has no report about itself.
	rs := checksumEvents(t, c, token, a).Reports(ctx)
	if rs.Err.Failed() || len(rs.Reports) != 1 {
		t.Fatalf("reports about %s: %+v", a, rs)
	}
	r := rs.Reports[0]
	if r.Receiver != b || r.Source != netip.MustParseAddr("10.77.0.1") || r.DstPort != 4789 || r.Count != 14 ||
		!r.Last.Equal(now) || !r.Fresh(now) {
		t.Errorf("report %+v", r)
	}
	if rs := checksumEvents(t, c, token, b).Reports(ctx); rs.Err.Failed() || len(rs.Reports) != 0 {
		t.Errorf("reports about %s: %+v", b, rs)
	}

	// A new run of bad packets after the report went stale starts its
	// window and count again, in the same Event.
	now = now.Add(detect.ReportFreshness + time.Minute)
	record(recv, "10.77.0.1", 2)
	evs = events()
	if len(evs) != 1 || evs[0].Annotations[kube.AnnotationCount] != "2" ||
		evs[0].Annotations[kube.AnnotationWindowStart] != now.Add(-time.Second).UTC().Format(time.RFC3339Nano) {
		t.Errorf("a new run: want the one event at 2 packets from %s, got %d events: %v", now.Add(-time.Second).UTC(), len(evs), evs[0].Annotations)
	}

	// The agent can neither delete nor rewrite another's report's note.
	sa, err := kubernetes.NewForConfig(c.Config(token))
	if err != nil {
		t.Fatal(err)
	}
	err = sa.EventsV1().Events("default").Delete(ctx, evs[0].Name, metav1.DeleteOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("deleting an event as the agent: %v; want Forbidden", err)
	}
	if _, err := sa.CoreV1().Secrets("nodetune").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing secrets as the agent: %v; want Forbidden", err)
	}
}
