package tune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nodetune/nodetune/detect"
)

// MeasureFunc measures the path between this node and peer (HOST[:PORT]
// of its responder): the peer measurer's Measure.
type MeasureFunc func(ctx context.Context, peer string) (detect.PeerMeasurement, error)

// DefaultMargin is the share of a path's throughput a change may lose, as
// measured, before it counts as slower and is undone. Two measurements a
// few seconds apart differ with nothing changed: on a two-core testbed
// loaded far beyond a node's usual (load average 17; two namespaces over
// VXLAN, 54 iperf3 runs of 1 to 3 s with 2 to 4 streams), one run fell
// below the one before by more than 30% in 14 of 51 pairs, by more than
// 50% in 3, and by more than 60% in none. Twelve runs of the peer
// measurer itself (bench --peer, 4 streams, 3 s, load average 6) varied
// less: the tunnel case fell by at most 43% from one run to the next,
// by more than 30% once in 11 pairs. Where offload hurts it costs
// 95% or more (30 times slower in projectcalico/calico issue 11435; almost
// everything on an underlay that drops large packets). The costs are
// uneven: undoing a change on noise leaves the setting as it was and
// misses a gain until a new measurement lifts the hold, while keeping a
// change that hurts leaves the path collapsed; so the margin sits where
// noise alone rarely reaches, not beyond every noise ever seen.
const DefaultMargin = 0.5

// Retries of a failed measurement after a change, as serve and fix make
// them: a peer's run takes seconds (four cases of 3 s each, by default), so
// two tries 15 s apart outlast most runs that made the peer busy.
const (
	DefaultRetries   = 2
	DefaultRetryWait = 15 * time.Second
)

// Verifier measures, for changes made to raise throughput, the path they
// should speed up, against one peer.
type Verifier struct {
	// Peer is the responder measured against, HOST[:PORT]; with none
	// (while a Measure is set) such changes wait, refused as unmeasured.
	Peer string
	// Measure runs one measurement.
	Measure MeasureFunc
	// Margin is the noise margin, in (0, 1) (DefaultMargin otherwise):
	// the share of throughput the path may lose after the change before it
	// counts as slower.
	Margin float64
	// Retries is how many times a failed measurement after a change is
	// tried again, RetryWait apart: a peer busy with another node's run
	// answers 429, and the change is in place, so its verdict is worth a
	// wait.
	Retries   int
	RetryWait time.Duration
}

// Verdict is what verifying one change concluded.
type Verdict string

// Verdicts.
const (
	// VerdictKept: the path did not measure slower beyond the margin; the
	// change stays.
	VerdictKept Verdict = "kept"
	// VerdictUndone: the path measured slower; the change was rolled back
	// through the journal and is held.
	VerdictUndone Verdict = "undone"
	// VerdictUnmeasured: the measurement after the change is no evidence
	// about it (it failed, or measured another path); the change stays,
	// and the next measurement judges it.
	VerdictUnmeasured Verdict = "unmeasured"
	// VerdictDeferred: the path could not be measured before the change,
	// so it was not made; it is tried again later.
	VerdictDeferred Verdict = "deferred"
)

// Verification is what became of one change made to raise throughput.
type Verification struct {
	Change  Change
	Verdict Verdict
	// Measured holds the two figures, as far as they were measured.
	Measured Measured
	// Err says why the change was not measured or not made.
	Err error
	// Hold is the hold that keeps an undone change from being made again.
	Hold *Hold
}

// String is one line for a person.
func (v Verification) String() string {
	switch v.Verdict {
	case VerdictUndone:
		return fmt.Sprintf("%s measured slower, %s; rolled back and held", v.Change.Key, v.Measured)
	case VerdictKept:
		return fmt.Sprintf("%s kept, %s", v.Change.Key, v.Measured)
	}
	return fmt.Sprintf("%s %s: %v", v.Change.Key, v.Verdict, v.Err)
}

// ApplyVerified is Apply for a plan with changes made to raise throughput
// (Kinds.RaisesThroughput): it makes the other changes first, then each
// such change between two measurements against v.Peer, and rolls back
// through the journal, and holds, each one whose path measured slower by
// more than v.Margin. The measurement before a change is taken just
// before it, not taken from an older run, so that both figures come from
// the same peer and path within seconds, under the same load. A change
// whose path cannot be measured before it is not made (Refused,
// ReasonUnmeasured), nor one with no peer to measure against; a Verifier
// without Measure makes such changes unverified, as Apply does. One
// measured with an error after it is kept and reported, not undone
// blindly: a failed measurement is no evidence that the change harms, and
// undoing on it would let a flaky peer decide.
func (t *Tuner) ApplyVerified(ctx context.Context, p Plan, v Verifier) ([]Outcome, []Verification) {
	if v.Margin <= 0 || v.Margin >= 1 {
		v.Margin = DefaultMargin
	}
	var rest, measured []Change
	for _, c := range p.Changes {
		if c.Refused == "" && t.Kinds().RaisesThroughput(c) {
			measured = append(measured, c)
		} else {
			rest = append(rest, c)
		}
	}
	if len(measured) == 0 || v.Measure == nil {
		return t.Apply(ctx, p), nil
	}
	out := t.Apply(ctx, p.with(rest))
	var vs []Verification
	var last *detect.PeerMeasurement
	for _, c := range measured {
		before := last
		if before == nil {
			m, err := v.baseline(ctx, c)
			if err != nil {
				if v.Peer != "" {
					err = fmt.Errorf("peer %s: %w", v.Peer, err)
				}
				err = fmt.Errorf("%s was not made: the path it should speed up could not be measured before it (%w); nodetune tries again later", c.Key, err)
				o := Outcome{Change: c, Action: ActionApply, Result: Refused, Err: err, Command: c.Command()}
				o.Change.Reason = ReasonUnmeasured
				t.logOutcome(o, false)
				out = append(out, o)
				vs = append(vs, Verification{Change: c, Verdict: VerdictDeferred, Err: err})
				continue
			}
			before = &m
		}
		made := t.Apply(ctx, p.with([]Change{c}))
		out = append(out, made...)
		if len(made) == 0 || made[0].Result != Verified {
			last = before // nothing changed: the measurement still stands
			continue
		}
		vf, undone := t.verifyOne(ctx, v, c, *before, made)
		i := len(out) - len(made)
		out[i].Note = joinNote(out[i].Note, vf.String())
		out = append(out, undone...)
		vs = append(vs, vf)
		last = nil
	}
	return out, vs
}

// baseline measures the path of change c before it; without a peer to
// measure against there is none.
func (v Verifier) baseline(ctx context.Context, c Change) (detect.PeerMeasurement, error) {
	if v.Peer == "" {
		return detect.PeerMeasurement{}, errors.New("no peer to measure against yet")
	}
	m, err := v.Measure(ctx, v.Peer)
	if err == nil {
		_, _, err = tunnelSend(m, c.Target, false)
	}
	return m, err
}

// verifyOne measures after change c, which made, an Apply, wrote, and
// undoes it when its path measured slower than before.
func (t *Tuner) verifyOne(ctx context.Context, v Verifier, c Change, before detect.PeerMeasurement, made []Outcome) (Verification, []Outcome) {
	vf := Verification{Change: c}
	after, err := v.Measure(ctx, v.Peer)
	for try := 0; err != nil && try < v.Retries && ctx.Err() == nil; try++ {
		select {
		case <-ctx.Done():
		case <-time.After(v.RetryWait):
			after, err = v.Measure(ctx, v.Peer)
		}
	}
	if err != nil {
		vf.Verdict, vf.Err = VerdictUnmeasured, fmt.Errorf("measuring after the change: %w; the change stays, unverified", err)
		return vf, nil
	}
	vf.Measured, err = Compare(before, after, c.Target, v.Margin)
	if err != nil {
		vf.Verdict, vf.Err = VerdictUnmeasured, fmt.Errorf("%w; the change stays, unverified", err)
		return vf, nil
	}
	if !vf.Measured.Slower() {
		vf.Verdict = VerdictKept
		return vf, nil
	}
	var ids []int64
	for _, o := range made {
		if o.Result == Verified && o.Entry != 0 {
			ids = append(ids, o.Entry)
		}
	}
	undone, hold, err := t.undo(ctx, ids, c, vf.Measured)
	vf.Verdict, vf.Hold, vf.Err = VerdictUndone, hold, err
	return vf, undone
}

// undo rolls back, newest first, the journal entries ids (what one Apply
// wrote for change c, its follow-ups included), records m with each, and
// holds c's setting at c's value, so that neither serve nor fix makes c
// again until a release lifts the hold. A setting that could not be
// restored is not held.
func (t *Tuner) undo(ctx context.Context, ids []int64, c Change, m Measured) ([]Outcome, *Hold, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Outcome
	var hold *Hold
	var errs []error
	stop := t.j.usable()
	for _, e := range t.j.open() {
		if !slices.Contains(ids, e.ID) {
			continue
		}
		rc := entryChange(e)
		rc.kind = t.kind(e.Key)
		o := Outcome{Change: rc, Action: ActionRollback, Entry: e.ID, Command: rc.kind.Command(e.Key, e.Original.Set), Note: "measured slower: " + m.String()}
		if stop != nil {
			o.Result, o.Err = Failed, stop
		} else {
			o, stop = t.restore(ctx, o, e, false, map[setting]Value{}, &m)
		}
		t.logOutcome(o, false)
		out = append(out, o)
		if o.Result == Failed {
			errs = append(errs, o.Err)
			continue
		}
		if e.Key != c.Key || (o.Result != Restored && o.Result != Closed) {
			continue
		}
		k := c.Key
		r := record{Event: evHold, Key: &k, Rule: c.Rule, Subject: c.Subject, NetNS: t.netns, To: c.To, Measured: &m}
		setTarget(&r, &k)
		if err := t.j.append(r, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		h := *t.j.st.holds[len(t.j.st.holds)-1]
		hold = &h
	}
	t.maybeCompact()
	return out, hold, errors.Join(errs...)
}

// with is p with only the changes cs, for applying a part of p.
func (p Plan) with(cs []Change) Plan {
	p.Changes = cs
	return p
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// ReleaseMeasured lifts the holds nodetune made itself after a change
// measured slower, where a measurement in ms taken since says otherwise:
// one that measured the change's own subject and found it no slower,
// beyond margin, than without it (for tx checksum offload, the temporary
// tunnel copied from the device, with offload on and off side by side).
// It returns the holds it lifted.
func (t *Tuner) ReleaseMeasured(ms []detect.PeerMeasurement, margin float64) ([]Hold, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Hold
	for _, h := range t.j.st.active() {
		if h.Measured == nil {
			continue
		}
		tk, ok := t.kind(h.Key).(throughputKind)
		if !ok {
			continue
		}
		c := Change{Key: h.Key, To: h.To}
		i := slices.IndexFunc(ms, func(m detect.PeerMeasurement) bool {
			helps, measured := tk.Helps(c, m, margin)
			return measured && helps && m.At.After(h.Measured.AfterAt)
		})
		if i < 0 {
			continue
		}
		note := fmt.Sprintf("a measurement against %s at %s found it helps", ms[i].Peer, ms[i].At.UTC().Format(time.RFC3339))
		if err := t.j.append(record{Event: evRelease, Entry: h.ID, Note: note}, nil); err != nil {
			return out, err
		}
		t.log.Info("lifted the hold on a change that had measured slower", "rule", h.Rule, "key", h.Key.String(), "why", note)
		out = append(out, h)
	}
	return out, nil
}
