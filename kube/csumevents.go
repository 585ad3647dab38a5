package kube

// Cross-node checksum evidence. A node whose capture traces bad outer
// checksums on tunnel packets to another Node's address records a
// TunnelChecksumErrors Event on that Node; each node reads the ones about
// itself, since a sender cannot see its own corrupt packets. One Event per
// (sender address, receiver, tunnel port), updated as a series (count and
// last observation) rather than one per cycle, with the figures in
// annotations: the Event's note is immutable in events.k8s.io/v1.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nodetune/nodetune/detect"
)

// ChecksumReason is the reason of the Events that report bad tunnel
// checksums from the Node they are about.
const ChecksumReason = "TunnelChecksumErrors"

// The annotations of a TunnelChecksumErrors Event: what makes it usable
// as evidence by the Node it is about.
const (
	// AnnotationSource is the packets' source address, as the receiver saw it.
	AnnotationSource = "nodetune.io/source-address"
	// AnnotationPort is the receiver's UDP port they were sent to.
	AnnotationPort = "nodetune.io/destination-port"
	// AnnotationReceiver is the Node that received them.
	AnnotationReceiver = "nodetune.io/receiver"
	// AnnotationCount is how many bad packets the receiver traced to the
	// source, over all windows from AnnotationWindowStart to AnnotationWindowEnd.
	AnnotationCount = "nodetune.io/bad-packets"
	// AnnotationWindowStart and AnnotationWindowEnd are when the first
	// window that saw them began and the latest ended (RFC 3339, the
	// receiver's clock).
	AnnotationWindowStart = "nodetune.io/window-start"
	AnnotationWindowEnd   = "nodetune.io/window-end"
)

// ErrBadReport marks a TunnelChecksumErrors Event whose annotations are
// missing or malformed.
var ErrBadReport = errors.New("malformed TunnelChecksumErrors event")

// minReportUpdate is how often one report's Event is written at most: a
// receiver that sees bad packets every cycle adds them up and writes them
// at this pace, so a short probe interval cannot flood the API server.
// The sender counts a report as recent for detect.ReportFreshness, far
// longer. A new report is written at once.
const minReportUpdate = 10 * time.Second

// ChecksumEvents records and reads TunnelChecksumErrors Events for one
// node. Record is called from one goroutine at a time; Reports and
// WatchReports may run alongside it.
type ChecksumEvents struct {
	client   *Client
	node     string
	instance string
	log      *slog.Logger
	now      func() time.Time

	// nodes names the Node that has an address.
	nodes *NodeAddresses

	// written are the reports this node recorded, by Event name; only
	// Record uses it.
	written map[string]*reportState

	// mu guards watch, which WatchReports keeps (csumwatch.go).
	mu    sync.Mutex
	watch *reportWatch
}

// reportState is one recorded report: what is written, and what waits.
type reportState struct {
	sender        string
	addr          netip.Addr
	port          uint16
	count         uint64
	series        int32
	start, end    time.Time
	pending       uint64
	pendingEnd    time.Time
	written       time.Time
	exists, fresh bool
}

// NewChecksumEvents returns a recorder and reader of the checksum Events
// for the Node called node, through the API server cfg points at.
func NewChecksumEvents(cfg *Config, node string, log *slog.Logger) (*ChecksumEvents, error) {
	if node == "" {
		return nil, errors.New("kube: no node name for the checksum events")
	}
	c, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ChecksumEvents{client: c, node: node, instance: "nodetune-" + node, log: log.With("node", node),
		now: time.Now, nodes: NewNodeAddresses(c), written: map[string]*reportState{}}, nil
}

// NodeFor returns the name of the Node that has addr as an InternalIP or
// ExternalIP, "" when none has.
func (e *ChecksumEvents) NodeFor(ctx context.Context, addr netip.Addr) (string, error) {
	return e.nodes.NodeFor(ctx, addr)
}

// reportName is the Event name of the report by this node about sender's
// packets from addr to port: the same one every time, so that a restarted
// agent updates its report rather than adding another.
func (e *ChecksumEvents) reportName(sender string, addr netip.Addr, port uint16) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%s|%d", e.node, addr, port)
	suffix := fmt.Sprintf(".tunnel-checksum.%016x", h.Sum64())
	if max := 253 - len(suffix); len(sender) > max {
		sender = strings.TrimRight(sender[:max], ".-")
	}
	return sender + suffix
}

// Record records the bad tunnel packets of one window, [start, end], that
// came from the addresses of other Nodes: on each such Node, an Event
// created or brought up to date. Sources that are no Node's are left
// alone (they are named in this node's own findings and metrics).
// Reports whose last write is recent wait and add up until
// minReportUpdate has passed; a call with no sources writes those.
func (e *ChecksumEvents) Record(ctx context.Context, sources []detect.BadChecksumSource, start, end time.Time) error {
	var errs []error
	for _, src := range sources {
		if src.Tunnel == "" || src.Count == 0 {
			continue
		}
		sender, err := e.NodeFor(ctx, src.Addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if sender == "" || sender == e.node {
			continue
		}
		name := e.reportName(sender, src.Addr.Unmap(), src.DstPort)
		st := e.written[name]
		if st == nil {
			st = &reportState{sender: sender, addr: src.Addr.Unmap(), port: src.DstPort}
			e.written[name] = st
		}
		if st.start.IsZero() || st.pending == 0 && start.Sub(st.end) > detect.ReportFreshness {
			// A new run of bad packets: the report's window and count
			// start again (the Event's series goes on).
			st.start, st.count = start, 0
		}
		st.pending += src.Count
		st.pendingEnd = end
	}
	now := e.now()
	for name, st := range e.written {
		if st.pending == 0 || st.exists && now.Sub(st.written) < minReportUpdate {
			continue
		}
		if err := e.write(ctx, name, st); err != nil {
			errs = append(errs, err)
			continue
		}
		st.written = now
	}
	return errors.Join(errs...)
}

// write creates the Event of st, or adds st's pending packets to it.
func (e *ChecksumEvents) write(ctx context.Context, name string, st *reportState) error {
	if !st.exists {
		err := e.create(ctx, name, st)
		if err == nil || !IsAlreadyExists(err) {
			return err
		}
		// Recorded by this node before a restart: carry on from it.
		var cur event
		if err := e.client.Get(ctx, eventsPath(NamespaceDefault, name), nil, &cur); err != nil {
			return fmt.Errorf("reading report %s: %w", name, err)
		}
		r, err := parseReport(&cur)
		if err != nil {
			return fmt.Errorf("report %s: %w", name, err)
		}
		st.exists, st.count, st.series = true, r.Count, 1
		if cur.Series != nil {
			st.series = cur.Series.Count
		}
		// A report older than the freshness window starts a new run.
		if st.pendingEnd.Sub(r.Last) <= detect.ReportFreshness {
			st.start = r.First
		} else {
			st.count = 0
		}
	}
	return e.update(ctx, name, st)
}

// create creates st's Event with its pending packets.
func (e *ChecksumEvents) create(ctx context.Context, name string, st *reportState) error {
	end := st.pendingEnd
	ev := event{
		ObjectMeta: ObjectMeta{Name: name, Namespace: NamespaceDefault, Annotations: map[string]string{
			AnnotationSource:      st.addr.String(),
			AnnotationPort:        strconv.Itoa(int(st.port)),
			AnnotationReceiver:    e.node,
			AnnotationCount:       strconv.FormatUint(st.pending, 10),
			AnnotationWindowStart: st.start.UTC().Format(time.RFC3339Nano),
			AnnotationWindowEnd:   end.UTC().Format(time.RFC3339Nano),
		}},
		EventTime:           NewMicroTime(end),
		ReportingController: Controller,
		ReportingInstance:   e.instance,
		Action:              "Capture",
		Reason:              ChecksumReason,
		Regarding:           objectReference{Kind: "Node", APIVersion: "v1", Name: st.sender},
		Note: fmt.Sprintf("tunnel packets from %s to UDP port %d on Node %s arrived with bad outer checksums; "+
			"the sender's tx checksum offload is the suspect (counts in the annotations)", st.addr, st.port, e.node),
		Type: eventTypeWarning,
	}
	err := e.client.Post(ctx, eventsPath(NamespaceDefault, ""), &ev, nil)
	if err != nil {
		return fmt.Errorf("recording %s on Node %s: %w", ChecksumReason, st.sender, err)
	}
	e.log.Info("recorded bad tunnel checksums on the sending Node", "sender", st.sender, "source", st.addr,
		"port", st.port, "packets", st.pending)
	st.exists, st.count, st.series = true, st.pending, 1
	st.end, st.pending = end, 0
	return nil
}

// update adds st's pending packets to its Event: the count and window in
// the annotations, the series' count and last observation.
func (e *ChecksumEvents) update(ctx context.Context, name string, st *reportState) error {
	count := st.count + st.pending
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{
			AnnotationCount:       strconv.FormatUint(count, 10),
			AnnotationWindowStart: st.start.UTC().Format(time.RFC3339Nano),
			AnnotationWindowEnd:   st.pendingEnd.UTC().Format(time.RFC3339Nano),
		}},
		"series": eventSeries{Count: st.series + 1, LastObservedTime: NewMicroTime(st.pendingEnd)},
	})
	if err != nil {
		return fmt.Errorf("encoding a report update: %w", err)
	}
	err = e.client.Patch(ctx, eventsPath(NamespaceDefault, name), MergePatch, patch, nil)
	if IsNotFound(err) {
		// Expired (the API server's event TTL): record it anew.
		st.exists, st.count, st.series = false, 0, 0
		return e.create(ctx, name, st)
	}
	if err != nil {
		return fmt.Errorf("updating report %s: %w", name, err)
	}
	st.count, st.series, st.end, st.pending = count, st.series+1, st.pendingEnd, 0
	return nil
}

// Reports reads what other nodes reported about this node: the
// TunnelChecksumErrors Events on its Node, recorded by nodetune; from what
// WatchReports keeps where it runs, else with a list. An Event
// that cannot be parsed is logged and left out; one that could not be
// listed makes the whole answer unknown.
func (e *ChecksumEvents) Reports(ctx context.Context) *detect.ChecksumReports {
	if out, ok := e.watched(ctx); ok {
		return out
	}
	out := &detect.ChecksumReports{Node: e.node}
	q := url.Values{"fieldSelector": {e.reportSelector()}}
	var l eventList
	if err := e.client.Get(ctx, eventsPath(NamespaceDefault, ""), q, &l); err != nil {
		out.Err = detect.Fail(fmt.Errorf("listing the %s events about Node %s: %w", ChecksumReason, e.node, err))
		return out
	}
	for i := range l.Items {
		ev := &l.Items[i]
		if ev.ReportingController != Controller {
			continue // someone else's event of the same reason
		}
		r, err := parseReport(ev)
		if err != nil {
			e.log.Warn("ignoring a report about this node", "event", ev.Name, "err", err)
			continue
		}
		out.Reports = append(out.Reports, r)
	}
	return out
}

// parseReport reads the report an Event's annotations carry.
func parseReport(ev *event) (detect.ChecksumReport, error) {
	return ParseReportAnnotations(ev.Annotations)
}

// ParseReportAnnotations reads a TunnelChecksumErrors Event's annotations.
func ParseReportAnnotations(a map[string]string) (detect.ChecksumReport, error) {
	var r detect.ChecksumReport
	get := func(key string) (string, error) {
		v, ok := a[key]
		if !ok || v == "" {
			return "", fmt.Errorf("%w: no %s", ErrBadReport, key)
		}
		return v, nil
	}
	v, err := get(AnnotationSource)
	if err != nil {
		return r, err
	}
	if r.Source, err = netip.ParseAddr(v); err != nil || r.Source.Zone() != "" {
		return r, fmt.Errorf("%w: %s %q is not an address", ErrBadReport, AnnotationSource, detect.Truncate(v, 64))
	}
	r.Source = r.Source.Unmap()
	if v, err = get(AnnotationPort); err != nil {
		return r, err
	}
	port, err := strconv.ParseUint(v, 10, 16)
	if err != nil || port == 0 {
		return r, fmt.Errorf("%w: %s %q is not a port", ErrBadReport, AnnotationPort, detect.Truncate(v, 64))
	}
	r.DstPort = uint16(port)
	if r.Receiver, err = get(AnnotationReceiver); err != nil {
		return r, err
	}
	if v, err = get(AnnotationCount); err != nil {
		return r, err
	}
	if r.Count, err = strconv.ParseUint(v, 10, 64); err != nil {
		return r, fmt.Errorf("%w: %s %q is not a count", ErrBadReport, AnnotationCount, detect.Truncate(v, 64))
	}
	for _, f := range []struct {
		key string
		t   *time.Time
	}{{AnnotationWindowStart, &r.First}, {AnnotationWindowEnd, &r.Last}} {
		if v, err = get(f.key); err != nil {
			return r, err
		}
		if *f.t, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return r, fmt.Errorf("%w: %s %q is not an RFC 3339 time", ErrBadReport, f.key, detect.Truncate(v, 64))
		}
	}
	if r.Last.Before(r.First) {
		return r, fmt.Errorf("%w: the window ends before it starts", ErrBadReport)
	}
	return r, nil
}
