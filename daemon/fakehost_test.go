package daemon

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// fakeHost is a Remediator over an in-memory host and journal. Apply
// writes each finding's changes and journals them as tune does (a setting
// already at the wanted value is not written), Holdings reads the live
// values back, and set plays another agent changing a setting.
type fakeHost struct {
	now     func() time.Time
	values  map[setting]string
	journal []Holding // oldest first
	// results script Apply: each call takes the next; the last repeats.
	// "verified" writes; "refused" and "failed" write nothing.
	results []string
	applied [][]rules.Finding
	// journalErr makes Holdings fail, as a journal that could not be
	// written does.
	journalErr error
}

func newFakeHost(now func() time.Time) *fakeHost {
	return &fakeHost{now: now, values: map[setting]string{}, results: []string{"verified"}}
}

func (h *fakeHost) set(c rules.Change, v string) { h.values[settingOf(c)] = v }

func (h *fakeHost) get(c rules.Change) string { return h.values[settingOf(c)] }

func (h *fakeHost) Apply(ctx context.Context, s *detect.Snapshot, fs []rules.Finding) ([]Outcome, error) {
	h.applied = append(h.applied, fs)
	res := h.results[0]
	if len(h.results) > 1 {
		h.results = h.results[1:]
	}
	var out []Outcome
	for _, f := range fs {
		for _, c := range f.Fix.Changes {
			o := Outcome{Rule: f.Rule, Subject: f.Subject, Action: tune.ActionApply, Result: tune.Result(res)}
			switch {
			case res == "verified" && h.get(c) == c.Value:
				o.Result, o.Ok = "unchanged", true
			case res == "verified":
				h.set(c, c.Value)
				h.journal = append(h.journal, Holding{Entry: int64(len(h.journal) + 1), Rule: f.Rule, Subject: f.Subject, Change: c, At: h.now()})
				o.Ok, o.Wrote = true, true
			}
			out = append(out, o)
		}
	}
	return out, nil
}

func (h *fakeHost) Holdings(ctx context.Context) ([]Holding, error) {
	if h.journalErr != nil {
		return nil, h.journalErr
	}
	var out []Holding
	seen := map[setting]bool{}
	for _, e := range slices.Backward(h.journal) {
		s := settingOf(e.Change)
		if seen[s] {
			continue
		}
		seen[s] = true
		e.Live = h.values[s]
		e.Undone = !tune.HostKinds(nil).Equal(s, e.Live, e.Change.Value)
		e.Stepwise = tune.HostKinds(nil).Stepwise(s)
		out = append(out, e)
	}
	return out, nil
}

func (h *fakeHost) Rollback(ctx context.Context) ([]Outcome, error)  { return nil, nil }
func (h *fakeHost) Reconcile(ctx context.Context) ([]Outcome, error) { return nil, nil }

var (
	offloadChange = rules.Change{Kind: rules.ChangeFeature, Target: "vxlan.calico", Setting: "tx-checksum-ip-generic", Value: "on"}
	tsoChange     = rules.Change{Kind: rules.ChangeFeature, Target: "vxlan.calico", Setting: "tx-tcp-segmentation", Value: "on"}
	backlogKey    = rules.Change{Kind: rules.ChangeSysctl, Target: "net.core.netdev_max_backlog"}
)

// offloadOff is the finding while tx checksum offload is off on h.
func offloadOff(h *fakeHost, owner *detect.Owner) []rules.Finding {
	if h.get(offloadChange) == "on" {
		return nil
	}
	return []rules.Finding{{
		Rule: rules.TunnelTxChecksumOff, Severity: rules.Warning, Subject: offloadChange.Target, Owner: owner,
		Fix: rules.Fix{Auto: true, Changes: []rules.Change{offloadChange}},
	}}
}

// backlogDrops is the softnet finding of a node whose drops go on whatever
// the backlog: its fix is always one step, double the current value.
func backlogDrops(h *fakeHost) []rules.Finding {
	cur, _ := strconv.Atoi(h.get(backlogKey))
	c := backlogKey
	c.Value = strconv.Itoa(2 * cur)
	return []rules.Finding{{
		Rule: rules.SoftnetDrops, Severity: rules.Warning, Subject: "softnet",
		Fix: rules.Fix{Auto: true, Changes: []rules.Change{c}},
	}}
}
