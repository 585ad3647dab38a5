package main

import (
	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/exporter"
	"github.com/nodetune/nodetune/tune"
)

// promOutput is serve's Prometheus output: each cycle becomes the state the
// exporter serves, each remediation step its counters and gauges.
type promOutput struct{ exp *exporter.Exporter }

// Publish makes c the state every later scrape sees.
func (p promOutput) Publish(c *daemon.Cycle) {
	st := &exporter.State{Snapshot: c.Snapshot, Result: c.Result}
	for _, t := range c.Throughput {
		st.Throughput = append(st.Throughput, exporter.Throughput{Path: t.Path, BitsPerSecond: t.BitsPerSecond})
	}
	p.exp.Update(st)
}

// Remediated counts each revert and outcome of r and sets the remediation
// gauges from its state.
func (p promOutput) Remediated(r *daemon.Remediation) {
	for _, h := range r.Reverted {
		p.exp.RecordConflict(h.Rule, h.Subject)
	}
	for _, o := range r.Outcomes {
		p.exp.RecordRemediation(o.Rule, string(o.Action), string(o.Result))
		if o.Result == tune.Refused {
			p.exp.RecordRefusal(o.Rule, string(o.Reason))
		}
	}
	if s := r.State; s != nil {
		p.exp.SetRemediation(&exporter.Remediation{
			JournalOK: s.JournalOK, Owned: s.Owned, GivenUp: s.GivenUp, LastSuccess: s.LastSuccess,
		})
	}
}
