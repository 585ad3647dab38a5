package daemon

import (
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// Publisher is one of serve's outputs (Prometheus, the Node's condition and
// events). The daemon hands every output each cycle's result and each
// remediation step as they happen, from its own goroutine and in order; no
// output polls another. A Publisher must return quickly: one that talks to
// a remote end queues the work for a goroutine of its own.
type Publisher interface {
	// Publish hands over what one cycle concluded. Nothing changes a
	// Cycle after it is published.
	Publish(c *Cycle)
	// Remediated hands over what one remediation step did: the changes of
	// an apply, a reconcile or a rollback, and the state it left.
	Remediated(r *Remediation)
}

// Cycle is what one probe cycle concluded.
type Cycle struct {
	// Snapshot is the node as the cycle found it.
	Snapshot *detect.Snapshot
	// Result is the rule catalog's verdict on Snapshot, plus the findings
	// the serve loop adds itself (remediation conflicts).
	Result rules.Result
	// Throughput is what the last on-demand benchmark measured, if any.
	Throughput []Throughput
}

// Throughput is one measured path of an on-demand benchmark.
type Throughput struct {
	// Path names what was measured: a bench case such as "underlay",
	// "tunnel-offload-on" or "tunnel-offload-off".
	Path string `json:"path"`
	// BitsPerSecond is the measured throughput.
	BitsPerSecond float64 `json:"bits_per_second"`
}

// Remediation is what one remediation step did.
type Remediation struct {
	// Outcomes are the changes made or tried, in the order they were.
	Outcomes []Outcome
	// Reverted are the values nodetune set and read back that someone
	// else changed since the last cycle, each counted once.
	Reverted []Holding
	// State is remediate mode as the step left it; nil after a reconcile
	// or rollback, which do not look at it.
	State *RemediationState
}

// RemediationState is the state of remediate mode after a cycle.
type RemediationState struct {
	// JournalOK is false when the journal cannot be written, so nodetune
	// applies nothing more.
	JournalOK bool
	// Owned is how many settings nodetune holds.
	Owned int
	// GivenUp is how many settings nodetune stopped managing because
	// another agent kept undoing its fix.
	GivenUp int
	// LastSuccess is when nodetune last wrote a fix and read it back; zero
	// if it never did.
	LastSuccess time.Time
}

// publish hands c to every output.
func (d *Daemon) publish(c *Cycle) {
	for _, p := range d.opt.Outputs {
		p.Publish(c)
	}
}

// remediated hands r to every output, unless it is empty.
func (d *Daemon) remediated(r *Remediation) {
	if len(r.Outcomes) == 0 && len(r.Reverted) == 0 && r.State == nil {
		return
	}
	for _, p := range d.opt.Outputs {
		p.Remediated(r)
	}
}
