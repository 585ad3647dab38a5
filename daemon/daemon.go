// Package daemon is nodetune's serve loop: it probes the node on an
// interval and whenever rtnetlink reports a change to a tunnel device,
// judges each snapshot with the rule catalog, hands the result to its
// outputs (Publisher) and, in remediate mode, applies the safe fixes while
// backing off from agents that undo them.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/probes"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// Outcome is what became of one change the Remediator tried.
type Outcome struct {
	// Rule and Subject name the finding the change fixes.
	Rule, Subject string
	// Action is what the change was part of: apply, rollback, reconcile.
	Action tune.Action
	// Result is how it ended: verified, unchanged, refused, failed,
	// reverted, restored, closed, conflict.
	Result tune.Result
	// Reason is why a refused change was refused; empty otherwise.
	Reason tune.Reason
	// Ok reports whether the setting was left as intended.
	Ok bool
	// Wrote reports whether nodetune wrote the new value and read it back.
	Wrote bool
	// Detail is one line for a person.
	Detail string
	// Verdict is, for a change made to raise throughput, what measuring it
	// concluded; empty when it was not measured. A rollback outcome of an
	// apply is the undoing of a change that measured slower.
	Verdict tune.Verdict
}

// Remediator applies fixes to the host and undoes them. TuneRemediator is
// the real one; a nil Remediator is observe mode.
type Remediator interface {
	// Apply plans and applies the auto-fixable changes of findings,
	// judged against s, and reports each change's outcome.
	Apply(ctx context.Context, s *detect.Snapshot, findings []rules.Finding) ([]Outcome, error)
	// Rollback restores every value nodetune set and nobody changed since.
	Rollback(ctx context.Context) ([]Outcome, error)
	// Reconcile finishes what a nodetune that died mid-apply left behind.
	Reconcile(ctx context.Context) ([]Outcome, error)
	// Holdings lists the settings nodetune holds (the newest open journal
	// entry of each), with whether the value it set is still in place.
	Holdings(ctx context.Context) ([]Holding, error)
}

// ConflictSource is a Remediator that raises remediation-conflict findings
// of its own, such as the cooperation with Felix when Felix fought it;
// each cycle reports them with the back-off's.
type ConflictSource interface {
	Conflicts() []rules.Finding
}

// Options configure a Daemon.
type Options struct {
	Host *probes.Host
	// Outputs receive each cycle's result and each remediation step, in
	// order; serve's are Prometheus and, in a cluster, the Node.
	Outputs []Publisher
	// Rules are the thresholds the catalog judges with.
	Rules rules.Config
	// Interval is the time between full probe cycles.
	Interval time.Duration
	// Window is how long the first snapshot measures rates over; later
	// snapshots cover the time since the one before.
	Window time.Duration
	// Debounce is how long a link event waits for others before the
	// tunnels are looked at again.
	Debounce time.Duration
	// Subscribe delivers link events; nil means interval probing only.
	Subscribe Subscriber
	// Remediator applies fixes; nil is observe mode, which never writes.
	Remediator Remediator
	// Paused, when set, is asked before each apply: while it reports true
	// no fix is applied (the Node's nodetune.io/mode=observe label).
	// Reconcile, rollback and the review of what nodetune holds go on.
	Paused func() bool
	// Backoff bounds re-applying fixes another agent undoes.
	Backoff Backoff
	// StateFile, when set, is where the back-off is kept across restarts
	// (BackoffFile in serve's state directory).
	StateFile string
	// RollbackOnExit restores what nodetune changed when Run returns.
	RollbackOnExit bool
	// Bench, when set, is what an on-demand benchmark runs.
	Bench BenchRunner
	// Reports, when set, is asked at each full cycle what other nodes
	// reported about this node's tunnel packets (reports.go).
	Reports ReportSource
	Log     *slog.Logger
}

// Daemon is a running serve loop.
type Daemon struct {
	opt       Options
	log       *slog.Logger
	prober    *probes.Prober
	conflicts *conflicts
	// full is the last full snapshot; quick cycles copy it and replace
	// only the tunnels, so rates keep covering the whole interval.
	full   *detect.Snapshot
	active map[key]rules.Severity
	// announced is when each finding's appearance was last logged at its
	// level, and cleared whether its clearing was since (logChanges).
	announced map[key]time.Time
	cleared   map[key]bool
	// refused are the fixes whose refusal was already logged.
	refused map[key]bool
	// waiting are the sysctl steps whose deferral was already logged.
	waiting map[key]bool
	// lastSuccess is when nodetune last wrote a fix and read it back.
	lastSuccess time.Time
	now         func() time.Time
	kick        chan struct{}

	benchMu    sync.Mutex // held while a benchmark runs
	measuredMu sync.Mutex
	measured   measurement
}

// New checks opts and returns a Daemon.
func New(opts Options) (*Daemon, error) {
	switch {
	case opts.Host == nil:
		return nil, errors.New("daemon: Host is required")
	case opts.Interval <= 0 || opts.Window <= 0:
		return nil, fmt.Errorf("daemon: interval (%s) and window (%s) must be positive", opts.Interval, opts.Window)
	case opts.Debounce < 0:
		return nil, fmt.Errorf("daemon: negative debounce %s", opts.Debounce)
	}
	if opts.Backoff.Max <= 0 || opts.Backoff.Window <= 0 {
		opts.Backoff = DefaultBackoff
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{
		opt:       opts,
		log:       log,
		prober:    probes.NewProber(opts.Host),
		conflicts: newConflicts(opts.Backoff),
		active:    map[key]rules.Severity{},
		announced: map[key]time.Time{},
		cleared:   map[key]bool{},
		refused:   map[key]bool{},
		waiting:   map[key]bool{},
		now:       time.Now,
		kick:      make(chan struct{}, 1),
	}
	if opts.StateFile != "" && opts.Remediator != nil {
		if err := d.conflicts.load(opts.StateFile); err != nil {
			// The file is written atomically, so this is damage from
			// outside; it is rewritten at the next change.
			log.Error("starting the remediation back-off afresh", "err", err)
		}
	}
	return d, nil
}

// Run probes until ctx ends, then rolls back if asked to and returns. It
// returns an error only when the first snapshot cannot be taken.
func (d *Daemon) Run(ctx context.Context) error {
	done := make(chan struct{})
	defer close(done)
	links := d.subscribe(done)
	if d.opt.Remediator != nil {
		d.record("reconciled the journal", d.opt.Remediator.Reconcile)
	}

	if err := d.fullCycle(ctx); err != nil {
		if ctx.Err() != nil {
			return d.shutdown()
		}
		return fmt.Errorf("taking the first snapshot: %w", err)
	}
	tick := time.NewTicker(d.opt.Interval)
	defer tick.Stop()
	reports := d.reportsChanged()
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return d.shutdown()
		case <-tick.C:
			if links == nil && d.opt.Subscribe != nil {
				links = d.subscribe(done)
			}
			if err := d.fullCycle(ctx); err != nil && ctx.Err() == nil {
				d.log.Error("probe cycle failed", "err", err)
			}
		case ev, ok := <-links:
			if !ok {
				d.log.Warn("link notifications stopped; probing on the interval until they resume")
				links = nil
				continue
			}
			if debounce == nil && d.relevant(ev) {
				d.log.Debug("link changed", "device", ev.Name, "type", ev.Type, "deleted", ev.Deleted)
				debounce = time.After(d.opt.Debounce)
			}
		case <-debounce:
			debounce = nil
			d.quickCycle(ctx)
		case <-d.kick:
			d.quickCycle(ctx)
		case <-reports:
			d.reportCycle(ctx)
		}
	}
}

// subscribe starts link notifications, or returns nil when there are none.
func (d *Daemon) subscribe(done <-chan struct{}) <-chan LinkEvent {
	if d.opt.Subscribe == nil {
		return nil
	}
	ch := make(chan LinkEvent, 256)
	err := d.opt.Subscribe(ch, done, func(err error) {
		select {
		case <-done: // the socket was closed to stop the subscription
		default:
			d.log.Warn("link notifications", "err", err)
		}
	})
	if err != nil {
		d.log.Warn("cannot watch links; probing on the interval only", "err", err)
		return nil
	}
	return ch
}

// relevant reports whether ev may change a tunnel finding: it is about a
// tunnel device, or the underlay of one.
func (d *Daemon) relevant(ev LinkEvent) bool {
	switch ev.Type {
	case detect.KindVXLAN, detect.KindGeneve, detect.KindIPIP:
		return true
	}
	if d.full == nil {
		return false
	}
	for _, t := range d.full.Tunnels.Devices {
		if t.Index == ev.Index || (t.Underlay != nil && t.Underlay.Index == ev.Index) {
			return true
		}
	}
	return false
}

// fullCycle runs every probe and concludes on the snapshot.
func (d *Daemon) fullCycle(ctx context.Context) error {
	s, err := d.prober.Snapshot(ctx, d.opt.Window)
	if err != nil {
		return err
	}
	d.addReports(ctx, s)
	d.full = s
	d.conclude(ctx, s)
	return nil
}

// quickCycle looks at the tunnels again and concludes on the last full
// snapshot with the new tunnels in it. It costs a link dump and an ethtool
// query per tunnel, so a changed device is judged within milliseconds.
func (d *Daemon) quickCycle(ctx context.Context) {
	if d.full == nil {
		return
	}
	s := *d.full
	start := time.Now()
	s.Tunnels = d.opt.Host.Tunnels()
	run := detect.ProbeRun{Name: "tunnels", Duration: time.Since(start), Err: s.Tunnels.Err}
	s.Probes = slices.Clone(s.Probes)
	if i := slices.IndexFunc(s.Probes, func(p detect.ProbeRun) bool { return p.Name == run.Name }); i >= 0 {
		s.Probes[i] = run
	} else {
		s.Probes = append(s.Probes, run)
	}
	s.CNI = detect.DetectCNI(&s)
	s.Taken = time.Now()
	d.full = &s
	d.conclude(ctx, &s)
}

// conclude judges s, remediates in remediate mode, and publishes the result.
func (d *Daemon) conclude(ctx context.Context, s *detect.Snapshot) {
	cfg := d.opt.Rules
	m := d.measurement()
	if m.loss > 0 {
		cfg.MeasuredLoss = m.loss
	}
	res := rules.Evaluate(s, cfg)
	if d.opt.Remediator != nil {
		res.Findings = append(res.Findings, d.remediate(ctx, s, res.Findings)...)
	}
	d.logChanges(res.Findings)
	d.publish(&Cycle{Snapshot: s, Result: res, Throughput: m.paths})
}

// remediate applies the fixes the back-off still allows and returns the
// conflict findings to report.
func (d *Daemon) remediate(ctx context.Context, s *detect.Snapshot, findings []rules.Finding) []rules.Finding {
	now := d.now()
	held, err := d.opt.Remediator.Holdings(ctx)
	if err != nil {
		// The journal cannot be written: tune refuses every change, so
		// say so rather than plan fixes that cannot be made.
		d.log.Error("remediation stopped: the journal cannot be written", "err", err)
		d.remediated(&Remediation{State: &RemediationState{
			JournalOK: false, GivenUp: d.conflicts.givenUp(), LastSuccess: d.lastSuccess,
		}})
		return nil
	}
	if d.lastSuccess.IsZero() {
		for _, h := range held {
			if h.At.After(d.lastSuccess) {
				d.lastSuccess = h.At
			}
		}
	}
	rv := d.conflicts.review(findings, held, now)
	step := &Remediation{Reverted: rv.reverted}
	for _, h := range rv.reverted {
		d.log.Warn("a value nodetune set was changed by someone else", "rule", h.Rule, "subject", h.Subject,
			"setting", settingName(h.Change), "set", h.Change.Value, "now", h.Live)
	}
	for _, k := range rv.gaveUp {
		owner := "unknown"
		if g := d.conflicts.given[k]; g != nil {
			owner = ownerName(g.conflict.Finding)
		}
		d.log.Warn("stopped re-applying a fix another agent keeps undoing", "rule", k.rule, "subject", k.subject,
			"owner", owner, "max_reapplies", d.opt.Backoff.Max, "window", d.opt.Backoff.Window)
	}
	d.logWaiting(rv.waiting)
	for _, f := range rv.retrying {
		d.log.Debug("a fix that failed waits for its retry", "rule", f.Rule, "subject", f.Subject)
	}
	if len(rv.fix) > 0 {
		step.Outcomes = d.apply(ctx, s, rv.fix, now)
		if held, err = d.opt.Remediator.Holdings(ctx); err != nil {
			d.log.Error("remediation stopped: the journal cannot be written", "err", err)
		}
	}
	if d.conflicts.dirty && d.opt.StateFile != "" {
		if err := d.conflicts.save(d.opt.StateFile); err != nil {
			d.log.Error("keeping the remediation back-off across restarts", "err", err)
		}
	}
	step.State = &RemediationState{
		JournalOK: err == nil, Owned: len(held), GivenUp: d.conflicts.givenUp(), LastSuccess: d.lastSuccess,
	}
	d.remediated(step)
	out := rv.conflicts
	if cs, ok := d.opt.Remediator.(ConflictSource); ok {
		out = append(out, cs.Conflicts()...)
	}
	if src, ok := d.opt.Remediator.(findingSource); ok {
		out = append(out, src.Findings()...)
	}
	return out
}

// apply applies the fixes of findings, unless remediation is paused, and
// logs and returns each outcome.
func (d *Daemon) apply(ctx context.Context, s *detect.Snapshot, findings []rules.Finding, now time.Time) []Outcome {
	var outcomes []Outcome
	if d.opt.Paused == nil || !d.opt.Paused() {
		var err error
		if outcomes, err = d.opt.Remediator.Apply(ctx, s, findings); err != nil {
			d.log.Error("remediation failed", "err", err)
		}
	}
	// A fix failed when a write of it failed and none of it was made: one
	// whose main write was verified, while a follow-up failed (another
	// agent switching offload off in between), is the conflict back-off's.
	failedNow, wrote := map[key]bool{}, map[key]bool{}
	for _, o := range outcomes {
		k := key{o.Rule, o.Subject}
		failedNow[k] = failedNow[k] || o.Result == tune.Failed
		wrote[k] = wrote[k] || o.Wrote
	}
	for k := range wrote {
		if wrote[k] {
			delete(failedNow, k)
		}
	}
	for _, f := range findings {
		if k := keyOf(f); failedNow[k] {
			retry := d.conflicts.failed(k, now)
			d.log.Error("a fix failed; nodetune tries it again later", "rule", k.rule, "subject", k.subject,
				"failures_in_a_row", d.conflicts.failing[k].Count, "retry_in", retry)
		} else {
			d.conflicts.succeeded(k)
		}
	}
	for _, o := range outcomes {
		k := key{o.Rule, o.Subject}
		switch {
		case o.Action == tune.ActionRollback:
			d.log.Warn("undid a change that measured slower", "rule", o.Rule, "subject", o.Subject, "result", o.Result, "detail", o.Detail)
		case o.Verdict == tune.VerdictUnmeasured:
			d.lastSuccess = now
			d.log.Warn("remediated, but the measurement after the change is no evidence about it; the change stays",
				"rule", o.Rule, "subject", o.Subject, "detail", o.Detail)
		case o.Result == tune.Refused:
			// A plan refusal (an owner without --force, an unsafe kernel)
			// repeats every cycle; say it once.
			if !d.refused[k] {
				d.refused[k] = true
				d.log.Info("nodetune will not apply this fix", "rule", o.Rule, "subject", o.Subject, "detail", o.Detail)
			}
		case !o.Ok:
			d.log.Error("remediation did not take", "rule", o.Rule, "subject", o.Subject, "result", o.Result, "detail", o.Detail)
		case o.Wrote:
			d.lastSuccess = now
			delete(d.waiting, k)
			d.log.Info("remediated", "rule", o.Rule, "subject", o.Subject, "detail", o.Detail)
		default:
			d.log.Debug("remediation", "rule", o.Rule, "subject", o.Subject, "result", o.Result, "detail", o.Detail)
		}
	}
	return outcomes
}

// logWaiting says once per step that a finding persists after nodetune
// stepped its sysctl, and that the next step waits for the window.
func (d *Daemon) logWaiting(findings []rules.Finding) {
	for _, f := range findings {
		if k := keyOf(f); !d.waiting[k] {
			d.waiting[k] = true
			d.log.Info("the finding persists after nodetune raised its setting; the next step waits for the back-off window",
				"rule", f.Rule, "subject", f.Subject, "window", d.opt.Backoff.Window)
		}
	}
}

// settingName names a setting the way a person would.
func settingName(c rules.Change) string {
	if c.Setting != "" {
		return c.Target + " " + c.Setting
	}
	return c.Target
}

func ownerName(f rules.Finding) string {
	if f.Owner == nil {
		return "unknown"
	}
	return f.Owner.Name
}

// logChanges logs findings that appeared or cleared since the last cycle.
// It logs state changes, not every flap: a finding that comes back less
// than a back-off window after its last announcement (a reverter switching
// a setting back and forth) is logged at debug level, and so is its
// clearing, until it has stayed away for a window.
func (d *Daemon) logChanges(findings []rules.Finding) {
	at := d.now()
	now := make(map[key]rules.Severity, len(findings))
	for _, f := range findings {
		k := keyOf(f)
		now[k] = f.Severity
		if _, was := d.active[k]; was {
			continue
		}
		lvl := slog.LevelInfo
		if f.Severity >= rules.Warning {
			lvl = slog.LevelWarn
		}
		if last, ok := d.announced[k]; ok && at.Sub(last) < d.opt.Backoff.Window {
			lvl = slog.LevelDebug // flapping
		} else {
			d.announced[k] = at
		}
		d.log.Log(context.Background(), lvl, f.Summary, "rule", f.Rule, "subject", f.Subject, "severity", f.Severity.String())
	}
	for k := range d.active {
		if _, still := now[k]; !still {
			lvl := slog.LevelInfo
			if last, ok := d.announced[k]; ok && at.Sub(last) < d.opt.Backoff.Window && d.cleared[k] {
				lvl = slog.LevelDebug
			}
			d.cleared[k] = true
			d.log.Log(context.Background(), lvl, "finding cleared", "rule", k.rule, "subject", k.subject)
		}
	}
	for k, last := range d.announced {
		if _, still := now[k]; !still && at.Sub(last) >= d.opt.Backoff.Window {
			delete(d.announced, k)
			delete(d.cleared, k)
		}
	}
	d.active = now
}

// shutdown rolls back when asked to. It runs after ctx has ended, so it
// gives the rollback a deadline of its own.
func (d *Daemon) shutdown() error {
	if !d.opt.RollbackOnExit || d.opt.Remediator == nil {
		return nil
	}
	if err := d.record("rolled back on exit", d.opt.Remediator.Rollback); err != nil {
		return fmt.Errorf("rolling back on exit: %w", err)
	}
	return nil
}

// record runs a journal-wide remediator step (reconcile, rollback) with a
// deadline of its own, and publishes and logs its outcomes.
func (d *Daemon) record(what string, step func(context.Context) ([]Outcome, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	outcomes, err := step(ctx)
	d.remediated(&Remediation{Outcomes: outcomes})
	for _, o := range outcomes {
		lvl := slog.LevelInfo
		if !o.Ok {
			lvl = slog.LevelError
		}
		d.log.Log(ctx, lvl, what, "rule", o.Rule, "subject", o.Subject, "result", o.Result, "detail", o.Detail)
	}
	if err != nil {
		d.log.Error(what, "err", err)
	}
	return err
}
