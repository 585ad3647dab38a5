// Package exporter presents nodetune's last probe cycle to Prometheus and
// over HTTP. A scrape never probes: the serve loop hands the exporter an
// immutable State at the end of each cycle, and every scrape reads the one
// current at that moment.
package exporter

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// State is what one probe cycle concluded. The exporter serves it until the
// next cycle replaces it; nothing may change a State after Update.
type State struct {
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

const (
	remediationsName = "nodetune_remediations_total"
	conflictsName    = "nodetune_remediation_conflicts_total"
	refusalsName     = "nodetune_remediation_refusals_total"
)

// Remediation is the state of remediate mode, which the serve loop reports
// after each cycle. In observe mode there is none.
type Remediation struct {
	// JournalOK is false when the journal could not be used (corrupt,
	// foreign, or locked by another nodetune), so the agent only observes.
	JournalOK bool
	// Owned is how many settings nodetune holds: those with an open
	// journal entry, which a rollback would restore.
	Owned int
	// GivenUp is how many settings nodetune stopped managing because
	// another agent kept undoing its fix.
	GivenUp int
	// LastSuccess is when nodetune last wrote a fix and read it back; zero
	// if it never did.
	LastSuccess time.Time
}

// Exporter holds the current State and nodetune's own counters, and serves
// them as Prometheus metrics.
type Exporter struct {
	version string
	state   atomic.Pointer[State]
	remedy  atomic.Pointer[Remediation]
	started time.Time
	// updated is when the last State was handed over (Unix nanoseconds),
	// and now the clock /healthz judges it by.
	updated  atomic.Int64
	now      func() time.Time
	registry *prometheus.Registry

	remediations *prometheus.CounterVec
	conflicts    *prometheus.CounterVec
	refusals     *prometheus.CounterVec
}

// New returns an Exporter for nodetune version, with its collectors
// registered in a registry of its own, the Go runtime's and the process's
// metrics included.
func New(version string) *Exporter {
	e := &Exporter{
		version:  version,
		started:  time.Now(),
		now:      time.Now,
		registry: prometheus.NewRegistry(),
		remediations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: remediationsName,
			Help: "Changes nodetune made (or tried to make) to restore network performance, by rule, action and result. " +
				"A rising failed or rolled-back count means a cause of lost throughput is still in place.",
		}, []string{"rule", "action", "result"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: conflictsName,
			Help: "Times a value nodetune wrote and read back was found changed by someone else (such as Calico Felix). Each one " +
				"means the performance fix was lost until nodetune re-applied it; past the back-off limit nodetune stops re-applying.",
		}, []string{"rule", "subject"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: refusalsName,
			Help: "Changes nodetune refused to make, by rule and reason: allowlist, bound, gate, unknown (the evidence could not be read), " +
				"owner (another agent owns the setting), duplicate, kept-off, held (rolled back by the user, or measured slower), stale, unplanned, unmeasured.",
		}, []string{"rule", "reason"}),
	}
	e.registry.MustRegister(
		collector{e},
		e.remediations,
		e.conflicts,
		e.refusals,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return e
}

// Update makes s the state every later scrape and request sees.
func (e *Exporter) Update(s *State) {
	e.state.Store(s)
	e.updated.Store(e.now().UnixNano())
}

// SetRemediation makes r the remediation state every later scrape sees.
func (e *Exporter) SetRemediation(r *Remediation) { e.remedy.Store(r) }

// State returns the current state, or nil before the first cycle.
func (e *Exporter) State() *State { return e.state.Load() }

// Ready reports whether a first snapshot has been taken.
func (e *Exporter) Ready() bool { return e.state.Load() != nil }

// Version is the nodetune version the exporter reports.
func (e *Exporter) Version() string { return e.version }

// Registry is where the exporter's collectors are registered.
func (e *Exporter) Registry() *prometheus.Registry { return e.registry }

// RecordRemediation counts one change nodetune made or tried to make.
func (e *Exporter) RecordRemediation(rule, action, result string) {
	e.remediations.WithLabelValues(rule, action, result).Inc()
}

// RecordRefusal counts one change nodetune refused to make, and why: one
// of tune's Reasons.
func (e *Exporter) RecordRefusal(rule, reason string) {
	if reason == "" {
		reason = "unspecified"
	}
	e.refusals.WithLabelValues(rule, reason).Inc()
}

// RecordConflict counts one revert of nodetune's change by another agent.
func (e *Exporter) RecordConflict(rule, subject string) {
	e.conflicts.WithLabelValues(rule, subject).Inc()
}
