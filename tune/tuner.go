package tune

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/shell"
	"github.com/nodetune/nodetune/rules"
)

// Tuner applies and rolls back changes on one host, journaling each before
// it is made. It holds the journal's lock from Open to Close, so two
// nodetune processes never interleave their changes.
type Tuner struct {
	mu    sync.Mutex
	sys   System
	j     *journal
	run   string
	netns string
	crash *crasher
	log   *slog.Logger
	// logged is, per setting, the last outcome logged (logOutcome).
	logged map[Key]string
	// keepClosed is how many closed entries compaction keeps (compact.go).
	keepClosed int
}

// Open opens the journal in stateDir (creating both if needed), locks it,
// and returns a Tuner that changes sys. A corrupt, foreign or locked journal
// is an error wrapping ErrJournal, and the file is left as it is.
func Open(stateDir string, sys System) (*Tuner, error) {
	j, err := openJournal(stateDir)
	if err != nil {
		return nil, err
	}
	return newTuner(j, sys), nil
}

// OpenReadOnly reads the journal in stateDir without locking it or writing
// anything, and returns a Tuner for dry runs: Plan, Entries and
// Rollback(ctx, true) work, even while another nodetune holds the journal;
// Apply, Reconcile and a real Rollback fail without touching the host. A
// missing journal reads as empty and is not created.
func OpenReadOnly(stateDir string, sys System) (*Tuner, error) {
	j, err := readJournal(stateDir)
	if err != nil {
		return nil, err
	}
	return newTuner(j, sys), nil
}

func newTuner(j *journal, sys System) *Tuner {
	netns, _ := os.Readlink("/proc/thread-self/ns/net")
	return &Tuner{
		sys:        sys,
		j:          j,
		run:        fmt.Sprintf("%d-%d", j.now().UnixNano(), os.Getpid()),
		netns:      netns,
		crash:      j.crash,
		keepClosed: DefaultKeepClosed,
		log:        slog.Default().With("journal", j.path),
	}
}

// JournalExists reports whether stateDir holds a journal, so read-only
// commands can say "nothing to roll back" without creating one.
func JournalExists(stateDir string) bool {
	_, err := os.Stat(filepath.Join(stateDir, JournalFile))
	return err == nil
}

// Close releases the journal.
func (t *Tuner) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.j.close()
}

// Plan is Propose for s's findings, with the journal's open entries of
// this network namespace as o.Claims, so that what nodetune did before
// shapes what it does next.
func (t *Tuner) Plan(s *detect.Snapshot, findings []rules.Finding, o PlanOptions) Plan {
	o.Claims = slices.Clip(o.Claims)
	for _, e := range t.Entries() {
		if t.otherNetns(&e) == "" {
			o.Claims = append(o.Claims, e)
		}
	}
	o.Holds = slices.Clip(o.Holds)
	for _, h := range t.Holds() {
		if t.held(h.Key) != nil && !slices.Contains(o.Release, "all") && !slices.Contains(o.Release, h.Rule) {
			o.Holds = append(o.Holds, h)
		}
	}
	p := propose(t.Kinds(), s, findings, o)
	p.approve(t)
	return p
}

// Usable says why the journal takes no more records (it was opened
// read-only, or a write to it failed), or nil when it does.
func (t *Tuner) Usable() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.j.usable()
}

// Entries returns the journal entries nodetune still claims, newest first.
func (t *Tuner) Entries() []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Entry
	for _, e := range t.j.open() {
		out = append(out, *e)
	}
	return out
}

// errJournalDown stops a run once the journal cannot be written: nothing is
// written to the host without its record.
var errJournalDown = fmt.Errorf("not attempted: %w", ErrJournalWrite)

// Apply makes the approved changes of p in order: for each, it reads the
// current value, records it in the journal (durably) before the first
// write, writes, and reads back; a value the kernel did not take is
// reverted. A change whose setting already has the wanted value is not
// written. Apply stops at the first journal write that fails, and once one
// has failed it changes nothing for the rest of the process.
func (t *Tuner) Apply(ctx context.Context, p Plan) []Outcome {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Outcome
	stop := t.j.usable()
	for _, c := range p.Changes {
		o := Outcome{Change: c, Action: ActionApply, Command: c.Command()}
		switch {
		case stop != nil:
			o.Result, o.Err = Failed, stop
		case ctx.Err() != nil:
			o.Result, o.Err = Failed, fmt.Errorf("not attempted: %w", ctx.Err())
		case c.Held:
			o.Result, o.Err = Refused, fmt.Errorf("%w%s", ErrHeld, strings.TrimPrefix(c.Refused, ErrHeld.Error()))
		case c.Refused != "":
			o.Result, o.Err = Refused, errors.New(c.Refused)
		case !c.vetted:
			o.Result, o.Err = Refused, fmt.Errorf("%s was not vetted by a plan of tune: %w", c.Key, ErrNotAllowed)
			o.Change.Reason = ReasonUnplanned
		case !p.approves(t, c):
			o.Result, o.Err = Refused, fmt.Errorf("%s was not planned as it stands by this Tuner's Plan, which consults the journal's holds and claims: %w", c.Key, ErrNotAllowed)
			o.Change.Reason = ReasonUnplanned
		default:
			var more []Outcome
			o, more, stop = t.applyChange(ctx, c)
			out = append(out, o)
			out = append(out, more...)
			continue
		}
		out = append(out, o)
	}
	for _, o := range out {
		t.logOutcome(o, false)
	}
	t.maybeCompact()
	return out
}

// applyChange makes one change, then the follow-up changes its kind
// brings with it (for tx checksum offload turned on, the segmentation
// features that should come back with it).
func (t *Tuner) applyChange(ctx context.Context, c Change) (Outcome, []Outcome, error) {
	o, err := t.write(ctx, c)
	if err != nil || (o.Result != Verified && o.Result != Unchanged) {
		return o, nil, err
	}
	f, ok := t.kind(c.Key).(followUps)
	if !ok {
		return o, nil, nil
	}
	more, err := t.followUp(ctx, c, f.FollowUps(c))
	return o, more, err
}

// followUp checks the follow-up changes of c once c is in place. A setting
// the kernel brings back by itself (the segmentation features, which stay
// requested on) needs nothing; one an operator had turned off is changed
// explicitly, journaled like any other change. One the host lacks, or
// that cannot be changed here, is skipped.
func (t *Tuner) followUp(ctx context.Context, c Change, subs []Change) ([]Outcome, error) {
	var out []Outcome
	for _, sub := range subs {
		k := sub.Key
		sub.kind = t.kind(k)
		v, err := t.sys.Read(ctx, k)
		if detect.Unavailable(err) {
			continue // the device has no such feature, or is gone
		}
		sub.From = v.Effective
		if err != nil {
			out = append(out, Outcome{Change: sub, Action: ActionApply, Result: Failed, Err: err})
			continue
		}
		if t.equal(k, v.Effective, sub.To) {
			continue // back
		}
		if err := t.sys.Writable(ctx, k); detect.Unavailable(err) || errors.Is(err, detect.ErrReadOnly) {
			continue // fixed by the driver, gone, or on a read-only mount
		} else if err != nil {
			out = append(out, Outcome{Change: sub, Action: ActionApply, Result: Failed,
				Err: fmt.Errorf("%s stays %s on %s: %w", k.Setting, v.Effective, c.Target, err)})
			continue
		}
		if t.equal(k, v.Set, sub.To) {
			out = append(out, Outcome{Change: sub, Action: ActionApply, Result: Failed,
				Err: fmt.Errorf("the kernel keeps %s %s on %s although it is requested %s", k.Setting, v.Effective, c.Target, sub.To)})
			continue
		}
		o, err := t.write(ctx, sub)
		out = append(out, o)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// write is the journaled write of one change: read, record the original,
// write, read back, and revert if the kernel did not take the value. The
// error is set only when the journal could not be written.
func (t *Tuner) write(ctx context.Context, c Change) (Outcome, error) {
	o := Outcome{Change: c, Action: ActionApply, Command: c.Command()}
	fail := func(r Result, err error) (Outcome, error) {
		o.Result, o.Err = r, err
		return o, nil
	}
	cur, err := t.sys.Read(ctx, c.Key)
	if err != nil {
		return fail(Failed, err)
	}
	if t.equal(c.Key, cur.Set, c.To) && t.equal(c.Key, cur.Effective, c.To) {
		return fail(Unchanged, nil)
	}
	if c.From != "" && !t.equal(c.Key, cur.Effective, c.From) {
		o.Change.Reason = ReasonStale
		return fail(Refused, fmt.Errorf("%s changed since the snapshot: it showed %s and now reads %s; run fix again", c.Key, c.From, cur.Effective))
	}
	if err := t.sys.Writable(ctx, c.Key); err != nil {
		return fail(Failed, err)
	}
	dev, err := t.identify(ctx, c.Key)
	if err != nil {
		return fail(Failed, err)
	}
	if err := t.closeGone(ctx, c.Key, dev); err != nil {
		o.Result, o.Err = Failed, fmt.Errorf("%w; nothing was written", err)
		return o, errJournalDown
	}
	e, err := t.j.intent(c, cur, t.run, t.netns, dev)
	if err != nil {
		o.Result, o.Err = Failed, fmt.Errorf("recording the original value of %s: %w; nothing was written", c.Key, err)
		return o, errJournalDown
	}
	o.Entry = e.ID
	t.crash.at("intent")
	if err := t.sameDevice(ctx, c.Key, dev); err != nil {
		if jerr := t.j.event(e, evGone, nil, err.Error()); jerr != nil {
			o.Result, o.Err = Failed, err
			return o, errJournalDown
		}
		return fail(Failed, fmt.Errorf("%w; nothing was written", err))
	}
	if werr := t.sys.Write(ctx, c.Key, c.To); werr != nil {
		now, rerr := t.sys.Read(ctx, c.Key)
		if rerr != nil || !t.equal(c.Key, now.Set, cur.Set) {
			return fail(Failed, fmt.Errorf("%w; %s may have changed, and its journal entry stays open for rollback", werr, c.Key))
		}
		if err := t.j.event(e, evFailed, &now, werr.Error()); err != nil {
			o.Result, o.Err = Failed, werr
			return o, errJournalDown
		}
		return fail(Failed, fmt.Errorf("%w; the value is unchanged", werr))
	}
	t.crash.at("write")
	if err := t.j.event(e, evApplied, nil, ""); err != nil {
		o.Result, o.Err = Failed, fmt.Errorf("%s was written but the journal could not record it: %w; its intent is recorded, so rollback can restore it", c.Key, err)
		return o, errJournalDown
	}
	t.crash.at("applied")
	got, err := t.sys.Read(ctx, c.Key)
	if err != nil {
		return fail(Failed, fmt.Errorf("reading %s back: %w; its journal entry stays open for rollback", c.Key, err))
	}
	if t.equal(c.Key, got.Effective, c.To) {
		if err := t.j.event(e, evVerified, &got, ""); err != nil {
			o.Result, o.Err = Failed, fmt.Errorf("%s took the new value but the journal could not record it: %w", c.Key, err)
			return o, errJournalDown
		}
		t.crash.at("verified")
		o.Result = Verified
		return o, nil
	}
	return t.revert(ctx, o, e, cur, got)
}

// revert writes the original value back after the kernel did not take the
// new one, and records it.
func (t *Tuner) revert(ctx context.Context, o Outcome, e *Entry, orig, got Value) (Outcome, error) {
	c := o.Change
	notTaken := fmt.Errorf("the kernel did not take %s=%s: it reads %s", c.Key, c.To, got.Effective)
	// A setting that reads back at its original needs no write; for a
	// module, that write would be an unload, which nodetune never does.
	if !t.equal(c.Key, got.Set, orig.Set) {
		if err := t.sameDevice(ctx, c.Key, e.Device); err != nil {
			o.Result, o.Err = Failed, fmt.Errorf("%w, and writing back %s was not attempted: %w; its journal entry stays open for rollback", notTaken, orig.Set, err)
			return o, nil
		}
		if err := t.sys.Write(ctx, c.Key, orig.Set); err != nil {
			o.Result, o.Err = Failed, fmt.Errorf("%w, and writing back %s failed: %w; its journal entry stays open for rollback", notTaken, orig.Set, err)
			return o, nil
		}
	}
	t.crash.at("revert")
	back, err := t.sys.Read(ctx, c.Key)
	if err != nil || !t.equal(c.Key, back.Set, orig.Set) {
		o.Result, o.Err = Failed, fmt.Errorf("%w, and the original %s did not read back (%v); its journal entry stays open for rollback", notTaken, orig.Set, err)
		return o, nil
	}
	if err := t.j.event(e, evReverted, &back, notTaken.Error()); err != nil {
		o.Result, o.Err = Failed, fmt.Errorf("%w; the original is back but the journal could not record it: %w", notTaken, err)
		return o, errJournalDown
	}
	o.Result, o.Err = Reverted, fmt.Errorf("%w; the original %s was written back", notTaken, orig.Set)
	return o, nil
}

// logOutcome logs what an outcome changed. It logs state changes, not
// events: a dry run changed nothing and logs at debug level; a refusal or
// failure that repeats the last one logged for its setting (a fix that
// fails every cycle, a refusal the daemon meets on every link event) is
// logged at warn level once, and at debug level after that, until the
// setting's outcome changes.
func (t *Tuner) logOutcome(o Outcome, dryRun bool) {
	attrs := []any{"action", o.Action, "result", o.Result, "rule", o.Change.Rule, "key", o.Change.Key.String(), "from", o.Change.From, "to", o.Change.To}
	if o.Err != nil {
		attrs = append(attrs, "err", o.Err)
	}
	if o.Note != "" {
		attrs = append(attrs, "note", o.Note)
	}
	msg := "change " + string(o.Result)
	if dryRun {
		t.log.Debug("dry run: "+msg+" (nothing written)", attrs...)
		return
	}
	state := string(o.Action) + " " + string(o.Result) + " " + errText(o.Err)
	repeat := t.logged[o.Change.Key] == state
	if t.logged == nil {
		t.logged = map[Key]string{}
	}
	t.logged[o.Change.Key] = state
	switch {
	case o.Result == Unchanged || o.Result == Planned || (repeat && !o.Ok()):
		t.log.Debug(msg, attrs...)
	case o.Err != nil && !o.Ok():
		t.log.Warn(msg, attrs...)
	default:
		t.log.Info(msg, attrs...)
	}
}

// entryChange is the rollback of e as a Change: from what nodetune set
// back to the original.
func entryChange(e *Entry) Change {
	return Change{Key: e.Key, From: e.To, To: e.Original.Set, Rule: e.Rule, Subject: e.Subject,
		Why: fmt.Sprintf("journal entry %d, run %s", e.ID, e.Run), vetted: true}
}

// sameDevice checks, right before a write to k, that k's device is still
// the one identified as dev (nil: not checked).
func (t *Tuner) sameDevice(ctx context.Context, k Key, dev *Device) error {
	now, _, err := t.locate(ctx, k, dev)
	if err == nil && now != k {
		err = fmt.Errorf("%s: the device was renamed to %s since nodetune read it", k, shell.Escape(t.deviceOf(now)))
	}
	return err
}

// closeGone closes, as gone, the open entries of k's setting in this
// network namespace that were made on another device than dev (one the
// CNI deleted, whose name the device nodetune is about to change now
// has): their original went with that device, and without this each
// re-creation of a tunnel that serve fixes again would leave one more
// entry open for ever. The error is set only when the journal could not
// be written.
func (t *Tuner) closeGone(ctx context.Context, k Key, dev *Device) error {
	if dev == nil {
		return nil
	}
	for _, e := range t.j.open() {
		if e.Key != k || e.Device == nil || e.Device.Is(*dev) || t.otherNetns(e) != "" {
			continue
		}
		_, _, err := t.locate(ctx, e.Key, e.Device)
		if !errors.Is(err, ErrGone) {
			continue
		}
		if jerr := t.j.event(e, evGone, nil, err.Error()); jerr != nil {
			return fmt.Errorf("recording %s for %s: %w", evGone, e.Key, jerr)
		}
		t.log.Info("closed the entry of a device that is gone", "entry", e.ID, "key", e.Key.String(), "err", err)
	}
	return nil
}

// otherNetns says why e cannot be handled from this network namespace, or "".
func (t *Tuner) otherNetns(e *Entry) string {
	if e.NetNS == "" || t.netns == "" || e.NetNS == t.netns || !t.kind(e.Key).PerNetNS() {
		return ""
	}
	return fmt.Sprintf("entry %d was made in network namespace %s and this process runs in %s; run nodetune there",
		e.ID, strings.Trim(e.NetNS, "net:[]"), strings.Trim(t.netns, "net:[]"))
}
