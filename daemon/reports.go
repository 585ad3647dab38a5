package daemon

import (
	"context"
	"time"

	"github.com/nodetune/nodetune/detect"
)

// ReportSource tells each full cycle what other nodes reported about this
// node: tunnel packets from it that arrived at them with bad checksums (in
// a cluster, the TunnelChecksumErrors Events on its Node). The rules
// judge them with the snapshot, so they stay pure.
type ReportSource interface {
	// ChecksumReports returns the reports, or why they could not be
	// read; it returns within the context's deadline.
	ChecksumReports(ctx context.Context) *detect.ChecksumReports
}

// reportTimeout bounds how long a cycle waits for the reports: an API
// server that does not answer makes them unknown, not the cycle late.
const reportTimeout = 5 * time.Second

// addReports fills s.UDP.Reported from the report source, if there is one.
func (d *Daemon) addReports(ctx context.Context, s *detect.Snapshot) {
	if d.opt.Reports == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, min(reportTimeout, d.opt.Interval))
	defer cancel()
	s.UDP.Reported = d.opt.Reports.ChecksumReports(ctx)
}

// ReportNotifier is a ReportSource that says when its reports change, so
// that a new report is judged at once rather than at the next full cycle.
type ReportNotifier interface {
	// ReportsChanged receives after each change.
	ReportsChanged() <-chan struct{}
}

// reportsChanged is the report source's notifications, or nil.
func (d *Daemon) reportsChanged() <-chan struct{} {
	if n, ok := d.opt.Reports.(ReportNotifier); ok {
		return n.ReportsChanged()
	}
	return nil
}

// reportCycle concludes again on the last full snapshot with the reports
// read anew, as quickCycle does with the tunnels.
func (d *Daemon) reportCycle(ctx context.Context) {
	if d.full == nil {
		return
	}
	s := *d.full
	d.addReports(ctx, &s)
	s.Taken = time.Now()
	d.full = &s
	d.conclude(ctx, &s)
}
