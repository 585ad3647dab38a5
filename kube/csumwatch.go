package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"time"

	"github.com/nodetune/nodetune/detect"
)

// reportWatch is the state of WatchReports: the reports about this node
// by Event name, kept current by a watch.
type reportWatch struct {
	synced  chan struct{}
	reports map[string]detect.ChecksumReport
	// err is why the last list failed; it makes the reports unknown
	// until a list succeeds.
	err error
}

// reportSelector selects the TunnelChecksumErrors Events about the Node.
func (e *ChecksumEvents) reportSelector() string {
	return "regarding.kind=Node,regarding.name=" + e.node + ",reason=" + ChecksumReason
}

// WatchReports keeps the reports about this node current until ctx ends:
// it lists the Events once, then watches them, and calls changed after
// every change, so that a new report is judged at once rather than at the
// next probe cycle. Once it runs, Reports answers from what it keeps. A
// failed list or watch backs off from 800 ms to 30 s and lists again.
func (e *ChecksumEvents) WatchReports(ctx context.Context, changed func()) {
	e.mu.Lock()
	if e.watch == nil {
		e.watch = &reportWatch{synced: make(chan struct{}), reports: map[string]detect.ChecksumReport{}}
	}
	e.mu.Unlock()
	rv := ""
	wait := backoffMin
	for ctx.Err() == nil {
		var err error
		listing := rv == ""
		if listing {
			rv, err = e.listReports(ctx)
		} else {
			rv, err = e.watchReports(ctx, rv, changed)
			if err == nil {
				wait = backoffMin
			}
		}
		switch {
		case ctx.Err() != nil:
			return
		case IsGone(err):
			rv = ""
			continue
		case err != nil:
			e.log.Warn("watching the reports about this node; trying again", "in", wait, "err", err)
			rv = ""
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, backoffMax)
			continue
		}
		if listing && changed != nil {
			changed() // listed anew: the reports may have changed
		}
	}
}

// listReports lists the reports into the watch state and returns the
// list's resourceVersion.
func (e *ChecksumEvents) listReports(ctx context.Context) (string, error) {
	var l eventList
	q := url.Values{"fieldSelector": {e.reportSelector()}}
	err := e.client.Get(ctx, eventsPath(NamespaceDefault, ""), q, &l)
	e.mu.Lock()
	defer e.mu.Unlock()
	w := e.watch
	defer func() {
		// The first list, good or bad, is an answer for Reports.
		select {
		case <-w.synced:
		default:
			close(w.synced)
		}
	}()
	if err != nil {
		w.err = fmt.Errorf("listing the %s events about Node %s: %w", ChecksumReason, e.node, err)
		return "", w.err
	}
	w.err = nil
	w.reports = map[string]detect.ChecksumReport{}
	for i := range l.Items {
		e.keep(w, &l.Items[i])
	}
	if l.ResourceVersion == "" {
		return "", errors.New("listing the reports: the list has no resourceVersion")
	}
	return l.ResourceVersion, nil
}

// keep takes ev into w, if it is a report by nodetune that parses.
func (e *ChecksumEvents) keep(w *reportWatch, ev *event) {
	if ev.ReportingController != Controller {
		delete(w.reports, ev.Name)
		return
	}
	r, err := parseReport(ev)
	if err != nil {
		e.log.Warn("ignoring a report about this node", "event", ev.Name, "err", err)
		delete(w.reports, ev.Name)
		return
	}
	w.reports[ev.Name] = r
}

// watchReports follows the reports from rv until the stream ends, and
// returns the last resourceVersion seen.
func (e *ChecksumEvents) watchReports(ctx context.Context, rv string, changed func()) (string, error) {
	return e.client.watchStream(ctx, eventsPath(NamespaceDefault, ""), e.reportSelector(), rv, "the reports", func(we watchEvent) (string, error) {
		var ev event
		if err := json.Unmarshal(we.Object, &ev); err != nil {
			return "", fmt.Errorf("watching the reports: decoding a %s event: %w", we.Type, err)
		}
		e.mu.Lock()
		switch we.Type {
		case "ADDED", "MODIFIED":
			e.keep(e.watch, &ev)
		case "DELETED":
			delete(e.watch.reports, ev.Name)
		}
		e.mu.Unlock()
		if we.Type != "BOOKMARK" && changed != nil {
			changed()
		}
		return ev.ResourceVersion, nil
	})
}

// watched returns the reports WatchReports keeps, waiting for its first
// list until ctx ends; ok is false when no watch runs.
func (e *ChecksumEvents) watched(ctx context.Context) (out *detect.ChecksumReports, ok bool) {
	e.mu.Lock()
	w := e.watch
	e.mu.Unlock()
	if w == nil {
		return nil, false
	}
	out = &detect.ChecksumReports{Node: e.node}
	select {
	case <-w.synced:
	case <-ctx.Done():
		out.Err = detect.Fail(fmt.Errorf("the reports about Node %s were not read yet: %w", e.node, ctx.Err()))
		return out, true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if w.err != nil {
		out.Err = detect.Fail(w.err)
		return out, true
	}
	names := slices.Sorted(maps.Keys(w.reports))
	for _, n := range names {
		out.Reports = append(out.Reports, w.reports[n])
	}
	return out, true
}
