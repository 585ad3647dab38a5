package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/probes"
	"github.com/nodetune/nodetune/rules"
)

// clock is a fake time the tests advance.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestDaemon(t *testing.T, r Remediator, c *clock, stateFile string) (*Daemon, *recorder) {
	t.Helper()
	rec := &recorder{}
	d, err := New(Options{Host: &probes.Host{}, Outputs: []Publisher{rec}, Interval: time.Minute, Window: time.Second,
		Remediator: r, Backoff: Backoff{Max: 3, Window: 10 * time.Minute}, StateFile: stateFile})
	if err != nil {
		t.Fatal(err)
	}
	if c != nil {
		d.now = c.now
	}
	return d, rec
}

// TestRemediateStepsPersistingSysctlOncePerWindow: drops go on after
// nodetune raised netdev_max_backlog. That is no revert (nodetune's value
// is in place), and the next step waits for the back-off window instead of
// doubling the backlog every cycle.
func TestRemediateStepsPersistingSysctlOncePerWindow(t *testing.T) {
	c := &clock{time.Unix(1e9, 0)}
	h := newFakeHost(c.now)
	h.set(backlogKey, "1000")
	d, exp := newTestDaemon(t, h, c, "")
	s := &detect.Snapshot{}
	var conflicts []rules.Finding
	for range 30 { // 5 minutes of 10-second cycles
		conflicts = append(conflicts, d.remediate(context.Background(), s, backlogDrops(h))...)
		c.advance(10 * time.Second)
	}
	if got := h.get(backlogKey); got != "2000" {
		t.Errorf("netdev_max_backlog = %s after 5 minutes, want one step: 2000", got)
	}
	if len(h.applied) != 1 {
		t.Errorf("Apply called %d times, want 1", len(h.applied))
	}
	if got := counter(t, exp, "nodetune_remediation_conflicts_total"); got != -1 {
		t.Errorf("conflicts counted %v; nobody undid anything", got)
	}
	if len(conflicts) != 0 {
		t.Errorf("conflict findings %+v; nobody undid anything", conflicts)
	}
	// Past the window, the next step.
	c.advance(5 * time.Minute)
	d.remediate(context.Background(), s, backlogDrops(h))
	if got := h.get(backlogKey); got != "4000" {
		t.Errorf("netdev_max_backlog = %s a window after the first step, want 4000", got)
	}
	if got := counter(t, exp, "nodetune_remediation_settings_owned"); got != 1 {
		t.Errorf("settings owned = %v, want 1 (two entries, one setting)", got)
	}
	if got := counter(t, exp, "nodetune_remediation_last_success_timestamp_seconds"); got != float64(c.now().Unix()) {
		t.Errorf("last success = %v, want %v", got, c.now().Unix())
	}
}

// TestRemediateStopsWhenTheJournalFails: once the journal cannot be
// written, nothing more is applied and nodetune_journal_ok says so.
func TestRemediateStopsWhenTheJournalFails(t *testing.T) {
	c := &clock{time.Unix(1e9, 0)}
	h := newFakeHost(c.now)
	h.set(backlogKey, "1000")
	d, exp := newTestDaemon(t, h, c, "")
	s := &detect.Snapshot{}
	d.remediate(context.Background(), s, backlogDrops(h))
	if got := counter(t, exp, "nodetune_journal_ok"); got != 1 {
		t.Fatalf("nodetune_journal_ok = %v with a healthy journal", got)
	}
	h.journalErr = errors.New("journal not writable: no space left on device")
	c.advance(time.Hour)
	d.remediate(context.Background(), s, backlogDrops(h))
	if len(h.applied) != 1 {
		t.Errorf("Apply called %d times, want 1: nothing after the journal failed", len(h.applied))
	}
	if got := counter(t, exp, "nodetune_journal_ok"); got != 0 {
		t.Errorf("nodetune_journal_ok = %v after the journal failed, want 0", got)
	}
}

// TestRemediateCountsRevertsOnlyOfVerifiedValues: refused and failed fixes
// are retried but never count as another agent's revert; a verified value
// that someone changes does, once, until the back-off gives up.
func TestRemediateCountsRevertsOnlyOfVerifiedValues(t *testing.T) {
	c := &clock{time.Unix(1e9, 0)}
	h := newFakeHost(c.now)
	h.set(offloadChange, "off")
	h.results = []string{"refused", "failed", "verified"}
	d, exp := newTestDaemon(t, h, c, "")
	felix := &detect.Owner{Name: detect.OwnerFelix, DurableFix: detect.FelixOverride}
	s := &detect.Snapshot{}
	var conflicts []rules.Finding
	for i := range 8 {
		conflicts = d.remediate(context.Background(), s, offloadOff(h, felix))
		h.set(offloadChange, "off") // Felix, within the cycle
		c.advance(10 * time.Second)
		if i == 1 {
			// The failed fix waits Window/2^Max (75 s) for its retry.
			c.advance(65 * time.Second)
		}
	}
	// Cycles: refused, failed, verified, then reverts 1-3 are re-applied
	// and revert 4 (over Max=3) ends it.
	if len(h.applied) != 6 {
		t.Errorf("Apply called %d times, want 6", len(h.applied))
	}
	if len(conflicts) != 1 || conflicts[0].Rule != rules.RemediationConflict || conflicts[0].Owner != felix {
		t.Fatalf("conflict findings = %+v", conflicts)
	}
	if got := counter(t, exp, "nodetune_remediation_conflicts_total", rules.TunnelTxChecksumOff, "vxlan.calico"); got != 4 {
		t.Errorf("conflicts counted %v, want 4", got)
	}
	if got := counter(t, exp, "nodetune_remediations_total", "apply", "verified", rules.TunnelTxChecksumOff); got != 4 {
		t.Errorf("verified applies counted %v, want 4", got)
	}
	if got := series(exp); got != 3 {
		t.Errorf("remediation series = %d, want refused, failed and verified", got)
	}
	if got := counter(t, exp, "nodetune_remediation_settings_given_up"); got != 1 {
		t.Errorf("settings given up = %v, want 1", got)
	}
	// Given up: more cycles write nothing, count nothing more, and keep
	// the conflict finding.
	for range 5 {
		if c := d.remediate(context.Background(), s, offloadOff(h, felix)); len(c) != 1 {
			t.Errorf("after giving up: %d conflict findings", len(c))
		}
	}
	if len(h.applied) != 6 || counter(t, exp, "nodetune_remediation_conflicts_total") != 4 {
		t.Errorf("after giving up: %d applies, %v conflicts", len(h.applied), counter(t, exp, "nodetune_remediation_conflicts_total"))
	}
}

// TestRemediateOneRevertPerFinding: switching tx checksum offload off also
// takes down the segmentation features nodetune turned on with it; that is
// one revert, not two.
func TestRemediateOneRevertPerFinding(t *testing.T) {
	c := &clock{time.Unix(1e9, 0)}
	h := newFakeHost(c.now)
	h.set(offloadChange, "off")
	h.set(tsoChange, "off")
	d, exp := newTestDaemon(t, h, c, "")
	f := offloadOff(h, nil)
	f[0].Fix.Changes = append(f[0].Fix.Changes, tsoChange)
	d.remediate(context.Background(), &detect.Snapshot{}, f)
	h.set(offloadChange, "off")
	h.set(tsoChange, "off")
	d.remediate(context.Background(), &detect.Snapshot{}, nil)
	if got := counter(t, exp, "nodetune_remediation_conflicts_total"); got != 1 {
		t.Errorf("conflicts counted %v, want 1", got)
	}
}

func TestRelevantLinkEvents(t *testing.T) {
	d, _ := newTestDaemon(t, nil, nil, "")
	d.full = &detect.Snapshot{Tunnels: detect.Tunnels{Devices: []detect.Tunnel{{
		Name: "vxlan.calico", Index: 7, Kind: detect.KindVXLAN, Underlay: &detect.Underlay{Name: "eth0", Index: 2},
	}}}}
	for _, tc := range []struct {
		ev   LinkEvent
		want bool
	}{
		{LinkEvent{Index: 9, Name: "flannel.1", Type: "vxlan"}, true},
		{LinkEvent{Index: 10, Name: "genev_sys_6081", Type: "geneve"}, true},
		{LinkEvent{Index: 7, Name: "vxlan.calico", Type: "vxlan", Deleted: true}, true},
		{LinkEvent{Index: 2, Name: "eth0", Type: "device"}, true},
		{LinkEvent{Index: 40, Name: "cali1234", Type: "veth"}, false},
	} {
		if got := d.relevant(tc.ev); got != tc.want {
			t.Errorf("relevant(%+v) = %v, want %v", tc.ev, got, tc.want)
		}
	}
}
