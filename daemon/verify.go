package daemon

import (
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// Verify is how remediate mode measures the changes it makes to raise
// throughput (tune.Kinds.RaisesThroughput): against which peer, with which
// measurer, and with what noise margin.
type Verify struct {
	// Measure runs one measurement against a peer.
	Measure tune.MeasureFunc
	// Peer returns the peer to measure against, HOST[:PORT] of its
	// responder, or "" when there is none yet: then such changes are made
	// as before, unverified, and their outcome says so.
	Peer func() string
	// Margin is the noise margin (tune.DefaultMargin when 0).
	Margin float64
}

// verifier is v as tune takes it, and whether there is a peer.
func (v *Verify) verifier() (tune.Verifier, bool) {
	if v == nil || v.Measure == nil || v.Peer == nil {
		return tune.Verifier{}, false
	}
	peer := v.Peer()
	margin := v.Margin
	if margin <= 0 {
		margin = tune.DefaultMargin
	}
	return tune.Verifier{Peer: peer, Measure: v.Measure, Margin: margin}, peer != ""
}

// findingSource is a Remediator with findings of its own, raised every
// cycle: TuneRemediator's changes that measured slower and are held.
type findingSource interface {
	Findings() []rules.Finding
}

// Findings are the remediation-measured-slower findings of the changes
// nodetune undid because they measured slower, for as long as their holds
// stand: after a restart too, since the journal keeps them.
func (r TuneRemediator) Findings() []rules.Finding {
	var out []rules.Finding
	for _, h := range r.Tuner.Holds() {
		if h.Measured == nil {
			continue
		}
		m := h.Measured
		out = append(out, rules.MeasuredSlowerFinding(rules.MeasuredSlower{
			Rule: h.Rule, Subject: h.Subject,
			Change: rules.Change{Kind: h.Key.Kind, Target: h.Key.Target, Setting: h.Key.Setting, Value: h.To},
			Peer:   m.Peer, Path: m.Path, Before: m.Before, After: m.After, At: m.AfterAt, Margin: m.Margin, Note: m.Note,
		}))
	}
	return out
}
