package daemon

import (
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// Verify is how remediate mode measures the changes it makes to raise
// throughput (tune.Kinds.RaisesThroughput): against which peer, with which
// measurer, and with what noise margin.
type Verify struct {
	// Measure runs one measurement against a peer.
	Measure tune.MeasureFunc
	// Peer is the responder to measure against, HOST[:PORT]. Empty means
	// the peer of the newest recent peer measurement in the snapshot (the
	// one serve's schedule saved last): a node known to answer, whose path
	// this node measured lately. With neither, changes made to raise
	// throughput wait, refused as unmeasured, until there is one.
	Peer string
	// Margin is the noise margin (tune.DefaultMargin when 0).
	Margin float64
	// Retries and RetryWait retry a failed measurement after a change
	// (serve: tune.DefaultRetries, tune.DefaultRetryWait).
	Retries   int
	RetryWait time.Duration
	// Active, when set, reports whether this node takes part in peer
	// measurement now (serve: its token file holds a token). While it
	// does not, nothing can be measured, and changes made to raise
	// throughput are made unverified, as without a Verify.
	Active func() bool
}

// verifier is v as tune takes it for snapshot s, and whether changes are
// verified at all (a nil v, or one without a measurer, makes them
// unverified).
func (v *Verify) verifier(s *detect.Snapshot) (tune.Verifier, bool) {
	if v == nil || v.Measure == nil || v.Active != nil && !v.Active() {
		return tune.Verifier{}, false
	}
	peer := v.Peer
	if peer == "" {
		peer = lastPeer(s)
	}
	margin := v.Margin
	if margin <= 0 {
		margin = tune.DefaultMargin
	}
	return tune.Verifier{Peer: peer, Measure: v.Measure, Margin: margin, Retries: v.Retries, RetryWait: v.RetryWait}, true
}

// lastPeer is the address of the peer of the newest peer measurement in s
// that is not stale, or "".
func lastPeer(s *detect.Snapshot) string {
	var newest detect.PeerMeasurement
	for _, m := range recentPeers(s) {
		if m.Address != "" && m.At.After(newest.At) {
			newest = m
		}
	}
	return newest.Address
}

// recentPeers are the peer measurements of s that still count as evidence.
func recentPeers(s *detect.Snapshot) []detect.PeerMeasurement {
	var out []detect.PeerMeasurement
	for _, m := range s.Peers.Measurements {
		if !m.Stale(s.Taken) {
			out = append(out, m)
		}
	}
	return out
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
