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
