package tune

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrHeld marks a change refused because the user rolled it back: after
// `nodetune rollback`, neither fix nor serve --mode remediate makes that
// change again until the hold is released (`nodetune fix --release`).
var ErrHeld = errors.New("held after rollback")

// Journal events of holds (journal version 2). A hold is not an entry: it
// changes nothing on the host, and stays until a release closes it.
const (
	evHold    = "hold"    // the user rolled this setting back: do not change it again
	evRelease = "release" // the user lifted the hold (Entry is the hold's sequence number)
)

// Hold is a setting the user rolled back, which nodetune leaves alone.
type Hold struct {
	// ID is the sequence number of the hold's record.
	ID  int64 `json:"id"`
	Key Key   `json:"key"`
	// Rule and Subject are the finding whose change was rolled back.
	Rule    string `json:"rule"`
	Subject string `json:"subject"`
	// NetNS is the network namespace the rollback ran in.
	NetNS string    `json:"netns,omitempty"`
	At    time.Time `json:"at"`
	// Released is set once a release lifted the hold.
	Released bool `json:"released,omitempty"`
	// To, when set, is the one value the hold keeps nodetune from
	// setting; a hold without it keeps the setting from any change.
	To string `json:"to,omitempty"`
	// Measured is set on a hold nodetune made itself, after the change
	// measured slower: the two figures.
	Measured *Measured `json:"measured,omitempty"`
}

// replayHold applies a hold or release record.
func (st *journalState) replayHold(r record) error {
	switch r.Event {
	case evHold:
		if r.Key == nil {
			return errors.New("a hold without a key")
		}
		k, err := keyOf(r)
		if err != nil {
			return err
		}
		st.holds = append(st.holds, &Hold{ID: r.Seq, Key: k, Rule: r.Rule, Subject: r.Subject, NetNS: r.NetNS, At: r.At,
			To: r.To, Measured: r.Measured})
		return nil
	case evRelease:
		i := slices.IndexFunc(st.holds, func(h *Hold) bool { return h.ID == r.Entry })
		if i < 0 {
			return fmt.Errorf("release of hold %d, which does not exist", r.Entry)
		}
		if st.holds[i].Released {
			return fmt.Errorf("release of hold %d, which is already released", r.Entry)
		}
		st.holds[i].Released = true
		return nil
	}
	return fmt.Errorf("unknown event %q", r.Event)
}

// active returns the holds no release has lifted.
func (st *journalState) active() []Hold {
	var out []Hold
	for _, h := range st.holds {
		if !h.Released {
			out = append(out, *h)
		}
	}
	return out
}

// Holds returns the holds in force: settings the user rolled back.
func (t *Tuner) Holds() []Hold {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.j.st.active()
}

// Hold records that the user rolled back the settings of outcomes (of a
// Rollback that was not a dry run): each one restored, or found at its
// original, or left to whoever changed it since, is held, so that neither
// fix nor serve --mode remediate changes it again until Release. Kernel
// modules stay loaded and are not held; a gone device is not held.
func (t *Tuner) Hold(outcomes []Outcome) ([]Hold, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Hold
	for _, o := range outcomes {
		if o.Action != ActionRollback || t.kind(o.Change.Key).Irreversible() != "" {
			continue
		}
		switch o.Result {
		case Restored, Closed, Conflict:
		default:
			continue
		}
		if t.held(o.Change.Key) != nil {
			continue
		}
		k := o.Change.Key
		r := record{Event: evHold, Key: &k, Rule: o.Change.Rule, Subject: o.Change.Subject, NetNS: t.netns}
		setTarget(&r, &k)
		if err := t.j.append(r, nil); err != nil {
			return out, err
		}
		out = append(out, *t.j.st.holds[len(t.j.st.holds)-1])
	}
	return out, nil
}

// Release lifts the holds of the given rules ("all" lifts every one), and
// returns the holds it lifted.
func (t *Tuner) Release(ids []string) ([]Hold, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Hold
	for _, h := range t.j.st.active() {
		if !slices.Contains(ids, "all") && !slices.Contains(ids, h.Rule) {
			continue
		}
		if err := t.j.append(record{Event: evRelease, Entry: h.ID}, nil); err != nil {
			return out, err
		}
		out = append(out, h)
	}
	return out, nil
}

// held returns the hold in force on k in this network namespace, or nil.
func (t *Tuner) held(k Key) *Hold {
	for _, h := range t.j.st.active() {
		if h.Key == k && (h.NetNS == "" || t.netns == "" || h.NetNS == t.netns || !t.kind(k).PerNetNS()) {
			return &h
		}
	}
	return nil
}

// heldReason says why c is refused for a hold in holds, or "".
func heldReason(c Change, holds []Hold) Refusal {
	for _, h := range holds {
		if h.Key != c.Key || (h.To != "" && h.To != c.To) {
			continue
		}
		if h.Measured != nil {
			return refuse(ReasonHeld, "%s: nodetune made this change at %s, measured %s, and undid it; it does not make it again "+
				"until a new measurement shows it helps, or: nodetune fix --release %s (or --release all)",
				ErrHeld, h.Measured.AfterAt.Format(time.RFC3339), h.Measured, h.Rule)
		}
		return refuse(ReasonHeld, "%s: `nodetune rollback` undid this change at %s, and nodetune does not make it again on its own; "+
			"to allow it: nodetune fix --release %s (or --release all)", ErrHeld, h.At.Format(time.RFC3339), h.Rule)
	}
	return Refusal{}
}
