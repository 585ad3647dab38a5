package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/exporter"
	"github.com/nodetune/nodetune/probes"
	"github.com/nodetune/nodetune/rules"
)

// scripted is a Remediator that answers each Apply with the next result.
type scripted struct {
	results []string
	applied [][]rules.Finding
}

func (s *scripted) Apply(ctx context.Context, snap *detect.Snapshot, fs []rules.Finding) ([]Outcome, error) {
	s.applied = append(s.applied, fs)
	res := s.results[0]
	if len(s.results) > 1 {
		s.results = s.results[1:]
	}
	var out []Outcome
	for _, f := range fs {
		out = append(out, Outcome{Rule: f.Rule, Subject: f.Subject, Action: "apply", Result: res,
			Ok: res == "verified" || res == "unchanged", Wrote: res == "verified"})
	}
	return out, nil
}

func (s *scripted) Rollback(ctx context.Context) ([]Outcome, error)  { return nil, nil }
func (s *scripted) Reconcile(ctx context.Context) ([]Outcome, error) { return nil, nil }

func newTestDaemon(t *testing.T, r Remediator) (*Daemon, *exporter.Exporter) {
	t.Helper()
	exp := exporter.New("test")
	d, err := New(Options{Host: &probes.Host{}, Exporter: exp, Interval: time.Minute, Window: time.Second,
		Remediator: r, Backoff: Backoff{Max: 2, Window: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	return d, exp
}

func counter(t *testing.T, exp *exporter.Exporter, name string, labels ...string) float64 {
	t.Helper()
	families, err := exp.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i, l := range m.GetLabel() {
				if i < len(labels) && l.GetValue() != labels[i] {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestRemediateCountsRevertsOnlyAfterVerifiedWrites: refused and failed
// fixes are retried but never count as another agent's revert; verified
// ones that come back do, until the back-off gives up.
func TestRemediateCountsRevertsOnlyAfterVerifiedWrites(t *testing.T) {
	r := &scripted{results: []string{"refused", "failed", "verified"}}
	d, exp := newTestDaemon(t, r)
	f := rules.Finding{Rule: rules.TunnelTxChecksumOff, Subject: "vxlan0", Severity: rules.Warning, Fix: rules.Fix{Auto: true}}
	s := &detect.Snapshot{}
	var conflicts []rules.Finding
	for range 6 {
		conflicts = d.remediate(context.Background(), s, []rules.Finding{f})
	}
	// Cycles: refused, failed, verified, then reverts 1 and 2 are
	// re-applied, and revert 3 (over Max=2) ends it.
	if len(r.applied) != 5 {
		t.Errorf("Apply called %d times, want 5", len(r.applied))
	}
	if len(conflicts) != 1 || conflicts[0].Rule != rules.RemediationConflict {
		t.Fatalf("conflict findings = %+v", conflicts)
	}
	if got := counter(t, exp, "nodetune_remediation_conflicts_total", rules.TunnelTxChecksumOff, "vxlan0"); got != 3 {
		t.Errorf("conflicts counted %v, want 3", got)
	}
	if got := counter(t, exp, "nodetune_remediations_total", "apply", "verified", rules.TunnelTxChecksumOff); got != 3 {
		t.Errorf("verified applies counted %v, want 3", got)
	}
	if got := testutil.CollectAndCount(exp.Registry(), "nodetune_remediations_total"); got != 3 {
		t.Errorf("remediation series = %d, want refused, failed and verified", got)
	}
	// Given up: more cycles write nothing and keep the conflict finding.
	if c := d.remediate(context.Background(), s, []rules.Finding{f}); len(c) != 1 || len(r.applied) != 5 {
		t.Errorf("after giving up: %d conflict findings, %d applies", len(c), len(r.applied))
	}
}

func TestRelevantLinkEvents(t *testing.T) {
	d, _ := newTestDaemon(t, nil)
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
