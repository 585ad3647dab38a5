package rules

import (
	"fmt"
	"time"

	"github.com/nodetune/nodetune/detect"
)

// RemediationMeasuredSlower is the rule ID of a change nodetune made to
// raise throughput, measured slower after it against a peer, and undid.
// It is not in the Catalog: whoever verified the change by measuring (the
// serve loop, fix --verify-peer) raises it through MeasuredSlowerFinding.
const RemediationMeasuredSlower = "remediation-measured-slower"

// MeasuredSlower is a change that measured slower and was undone.
type MeasuredSlower struct {
	// Rule and Subject are the finding whose fix was undone.
	Rule, Subject string
	// Change is the setting and the value that measured slower.
	Change Change
	// Peer, Path, Before and After are the measurements: the path to the
	// peer, in bits per second before and after the change.
	Peer, Path    string
	Before, After float64
	// At is when the measurement after the change ended.
	At time.Time
	// Margin is the noise margin the comparison allowed.
	Margin float64
	// Note says what else the measurement after the change showed.
	Note string
}

// MeasuredSlowerFinding is the finding for a change that measured slower
// on the real path and was undone, with both figures.
func MeasuredSlowerFinding(m MeasuredSlower) Finding {
	setting := m.Change.Target
	if m.Change.Setting != "" {
		setting += " " + m.Change.Setting
	}
	loss := 0.0
	if m.Before > 0 {
		loss = max(0, 1-m.After/m.Before)
	}
	ev := []Evidence{
		{"rule", m.Rule}, {"setting", setting}, {"value", m.Change.Value},
		{"peer", m.Peer}, {"path", m.Path},
		{"before_bps", fmt.Sprintf("%.0f", m.Before)}, {"after_bps", fmt.Sprintf("%.0f", m.After)},
		{"noise_margin", fmt.Sprintf("%.0f%%", 100*m.Margin)}, {"measured_at", m.At.UTC().Format(time.RFC3339)},
	}
	if m.Note != "" {
		ev = append(ev, Evidence{"note", m.Note})
	}
	return Finding{
		Rule:     RemediationMeasuredSlower,
		Severity: Warning,
		Subject:  m.Subject,
		Summary: fmt.Sprintf("`%s` (for %s) measured slower on the %s path to %s: %s before, %s after; nodetune undid it and does not make it again",
			m.Change.Command(), m.Rule, m.Path, m.Peer, detect.Rate(m.Before), detect.Rate(m.After)),
		Explanation: "nodetune made this change to raise throughput, and measured the path it should speed up against a peer " +
			"just before and just after it. The path lost more than the noise margin allows, so the change is no fix on this " +
			"node: nodetune rolled it back through its journal, keeps both figures there, and holds the setting. The finding " +
			"that asked for the change may stay; on this path its published estimate is wrong.",
		Evidence: ev,
		Impact: Impact{
			Summary: fmt.Sprintf("the change cost %.0f%% of the measured throughput; it is undone", 100*loss),
			Source:  "measured on this node pair, before and after the change",
		},
		Fix: Fix{
			Command: "nodetune fix --release " + m.Rule,
			Manual: "leave the setting as it is. The NIC or the underlay handles the change badly (for tx checksum offload, " +
				"large GSO tunnel packets); look there. A new measurement that shows the change helps, or the command, lets nodetune try again",
		},
		References: []string{"projectcalico/calico#11435", "docs/serve.md"},
	}
}
