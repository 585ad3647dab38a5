package kube

import "time"

// SetClock makes e read the time from now, so that tests need not wait
// for minReportUpdate.
func SetClock(e *ChecksumEvents, now func() time.Time) { e.now = now }
