package main

// Cross-node checksum evidence in serve: an output (daemon.Publisher) that
// records the bad tunnel packets each cycle traced to another Node as a
// TunnelChecksumErrors Event on that Node, and a daemon.ReportSource that
// reads the Events other nodes recorded about this one for the next
// cycle's rules. Both run only where serve reports to Kubernetes
// (serve_kube.go).

import (
	"context"
	"log/slog"
	"time"

	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/kube"
)

// csumQueue is how many cycles may wait for the API server; more are
// dropped (and logged) rather than slow the serve loop down.
const csumQueue = 4

// csumWrite bounds the writes of one cycle's reports.
const csumWrite = 30 * time.Second

// checksumHook is serve's cross-node checksum output and report source:
// it watches the reports about this node and has the daemon judge them as
// they change.
type checksumHook struct {
	ev     *kube.ChecksumEvents
	log    *slog.Logger
	queue  chan csumWindow
	cancel context.CancelFunc
	done   chan struct{}
	// changed receives when the reports about this node change.
	changed chan struct{}
	// recorded is the capture whose sources were last queued: cycles
	// that conclude again on the same snapshot (a link change, a new
	// report) carry it too, and must not count it twice.
	recorded *detect.ChecksumCapture
}

// csumWindow is what one cycle traced: the bad tunnel packets' sources,
// and the window they were counted in.
type csumWindow struct {
	sources    []detect.BadChecksumSource
	start, end time.Time
}

// startChecksumEvents starts the output and source for the Node called
// node, and adds them to opts.
func startChecksumEvents(cfg *kube.Config, node string, log *slog.Logger, opts *daemon.Options) (*checksumHook, error) {
	ev, err := kube.NewChecksumEvents(cfg, node, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &checksumHook{ev: ev, log: log, queue: make(chan csumWindow, csumQueue), cancel: cancel, done: make(chan struct{}),
		changed: make(chan struct{}, 1)}
	go h.run(ctx)
	go ev.WatchReports(ctx, h.notify)
	opts.Outputs = append(opts.Outputs, h)
	opts.Reports = h
	return h, nil
}

// Publish queues the bad tunnel packets c traced, for the goroutine that
// writes the Events. A cycle that traced none is queued too: it lets the
// writer flush counts it held back. It never waits for the API server.
func (h *checksumHook) Publish(c *daemon.Cycle) {
	w := csumWindow{end: c.Snapshot.Taken, start: c.Snapshot.Taken.Add(-c.Snapshot.Window)}
	if capture := c.Snapshot.UDP.Capture; c.Snapshot.UDP.ChecksumVerdict() == detect.AttrTunnel && capture != h.recorded {
		w.sources = capture.TunnelSources()
		h.recorded = capture
	}
	select {
	case h.queue <- w:
	default:
		if len(w.sources) > 0 {
			h.log.Warn("too many cycles waiting to report bad tunnel checksums to the API server; dropped one", "sources", detect.JoinSources(w.sources))
		}
	}
}

// Remediated does nothing: remediations are the Node reporter's.
func (h *checksumHook) Remediated(*daemon.Remediation) {}

// notify says that the reports changed, without waiting.
func (h *checksumHook) notify() {
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// ReportsChanged receives when the reports about this node change.
func (h *checksumHook) ReportsChanged() <-chan struct{} { return h.changed }

// ChecksumReports reads the Events other nodes recorded about this one.
func (h *checksumHook) ChecksumReports(ctx context.Context) *detect.ChecksumReports {
	return h.ev.Reports(ctx)
}

// run writes the queued windows' reports until close.
func (h *checksumHook) run(ctx context.Context) {
	defer close(h.done)
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-h.queue:
			wctx, cancel := context.WithTimeout(ctx, csumWrite)
			if err := h.ev.Record(wctx, w.sources, w.start, w.end); err != nil && ctx.Err() == nil {
				h.log.Warn("recording bad tunnel checksums on the sending Nodes", "err", err)
			}
			cancel()
		}
	}
}

// close stops the writer.
func (h *checksumHook) close() {
	if h == nil {
		return
	}
	h.cancel()
	<-h.done
}
