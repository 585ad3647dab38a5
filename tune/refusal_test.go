package tune

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// TestOffloadGateReasons: the offload gate refuses as unknown what it
// could not check (the kernel release unreadable, a kernel whose fix status
// is unknown, the checksum counters unreadable) and as gate what the
// evidence rules out, so the refusals metric tells the two apart.
func TestOffloadGateReasons(t *testing.T) {
	release := func(r string) func(*detect.Snapshot) {
		return func(s *detect.Snapshot) {
			v, _ := detect.ParseRelease(r)
			s.Kernel = detect.Kernel{Release: r, Version: v}
		}
	}
	tests := []struct {
		name string
		edit func(*detect.Snapshot)
		want Reason
	}{
		{"kernel unreadable", func(s *detect.Snapshot) { s.Kernel = detect.Kernel{Err: detect.Fail(detect.ErrPermission)} }, ReasonUnknown},
		{"distribution kernel, fix status unknown", release("5.4.0-150-generic"), ReasonUnknown},
		{"release candidate, fix status unknown", release("5.7.0-rc2"), ReasonUnknown},
		{"kernel without the fix", release("5.4.40"), ReasonGate},
		{"counters unreadable", func(s *detect.Snapshot) { s.UDP.Err = detect.Fail(detect.ErrNotSupported) }, ReasonUnknown},
		{"IPv6 counter unreadable", func(s *detect.Snapshot) { s.UDP.Err6 = detect.Fail(detect.ErrPermission) }, ReasonUnknown},
		{"bad checksums arriving", func(s *detect.Snapshot) { s.UDP.Delta = 3 }, ReasonGate},
	}
	n := newNode(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := n.snapshot(t)
			tt.edit(s)
			p := Propose(s, []rules.Finding{finding(rules.Change{Kind: rules.ChangeFeature, Target: "vxlan0",
				Setting: detect.FeatureTxChecksumGeneric, Value: on})}, PlanOptions{})
			if len(p.Changes) != 1 {
				t.Fatalf("plan: %v", p.Changes)
			}
			if c := p.Changes[0]; c.Reason != tt.want {
				t.Errorf("refused as %q (%s); want %s", c.Reason, c.Refused, tt.want)
			}
		})
	}
}

// TestApplyRefusesAPlannedChangeEditedAfterPlan: a change of this Tuner's
// plan edited after Plan in anything the journal or the gates rely on (the
// value it was planned from, which the staleness check compares; the rule
// the journal records, which later plans' claims and releases match) is
// not made, whatever its new value.
func TestApplyRefusesAPlannedChangeEditedAfterPlan(t *testing.T) {
	tests := map[string]struct {
		edit func(*Change)
		// now is what the backlog reads when Apply runs.
		now string
	}{
		// Someone raised the backlog after the snapshot: the plan is stale.
		"from cleared": {func(c *Change) { c.From = "" }, "1500"},
		"from moved":   {func(c *Change) { c.From = "1500" }, "1500"},
		"rule":         {func(c *Change) { c.Rule = rules.TunnelTxChecksumUnsafe }, "1000"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			n := newNode(t)
			s := loadedSnapshot(t, n)
			findings := rules.Evaluate(s, rules.DefaultConfig()).Findings
			tu := openTuner(t, t.TempDir(), n.host)
			p := tu.Plan(s, findings, PlanOptions{Rules: []string{rules.SoftnetDrops}})
			backlog := filepath.Join(n.proc, "sys/net/core/netdev_max_backlog")
			if err := os.WriteFile(backlog, []byte(tt.now+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			p.Changes = slices.Clone(p.Changes)
			i := slices.IndexFunc(p.Changes, func(c Change) bool { return c.Target == SysctlMaxBacklog })
			if i < 0 {
				t.Fatalf("no backlog change planned: %v", p.Changes)
			}
			tt.edit(&p.Changes[i])
			out := tu.Apply(context.Background(), p)
			j := slices.IndexFunc(out, func(o Outcome) bool { return o.Change.Target == SysctlMaxBacklog })
			if j < 0 || out[j].Result != Refused || out[j].Change.Reason != ReasonUnplanned {
				t.Errorf("apply of the edited change: %v", out)
			}
			if got := readFile(t, backlog); got != tt.now {
				t.Errorf("netdev_max_backlog = %s after a refused change", got)
			}
		})
	}
}

// TestRPSTargetOffTheAllowlist: an RPS target that is not DEV/rx-N is
// outside what nodetune may write at all (splitQueue says ErrNotAllowed),
// not a mask out of bounds.
func TestRPSTargetOffTheAllowlist(t *testing.T) {
	n := newNode(t)
	s := n.snapshot(t)
	for _, target := range []string{"eth0", "eth0/tx-0", "../eth0/rx-0"} {
		p := Propose(s, []rules.Finding{finding(rules.Change{Kind: rules.ChangeRPS, Target: target, Value: "3"})}, PlanOptions{})
		if len(p.Changes) != 1 {
			t.Fatalf("RPS change of %q: %v", target, p.Changes)
		}
		if c := p.Changes[0]; c.Reason != ReasonAllowlist {
			t.Errorf("RPS change of %q refused as %q (%s); want %s", target, c.Reason, c.Refused, ReasonAllowlist)
		}
	}
}
