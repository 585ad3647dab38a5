package tune

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// kindContract is what every registered kind must do on the fixture node:
// approve one change and refuse another for a typed reason, read a key,
// compare values as the same setting, and render a command.
type kindContract struct {
	approve, refuse rules.Change
	reason          Reason
	read            Key
	want            Value
	// equal and differ are pairs of values that are, and are not, the same
	// setting.
	equal, differ [][2]string
	command       string
	irreversible  bool
	perNetNS      bool
	stepwise      bool
}

func contracts() map[string]kindContract {
	return map[string]kindContract{
		rules.ChangeFeature: {
			approve:  rules.Change{Kind: rules.ChangeFeature, Target: "vxlan0", Setting: detect.FeatureTxChecksumGeneric, Value: on},
			refuse:   rules.Change{Kind: rules.ChangeFeature, Target: "vxlan0", Setting: detect.FeatureGRO, Value: on},
			reason:   ReasonAllowlist,
			read:     Key{Kind: rules.ChangeFeature, Target: "vxlan0", Setting: detect.FeatureTxChecksumGeneric},
			want:     Value{Set: off, Effective: off},
			equal:    [][2]string{{on, on}},
			differ:   [][2]string{{on, off}},
			command:  "ethtool -K vxlan0 tx-checksum-ip-generic on",
			perNetNS: true,
		},
		rules.ChangeSysctl: {
			approve:  rules.Change{Kind: rules.ChangeSysctl, Target: SysctlMaxBacklog, Value: "2000"},
			refuse:   rules.Change{Kind: rules.ChangeSysctl, Target: SysctlMaxBacklog, Value: "500"},
			reason:   ReasonBound,
			read:     Key{Kind: rules.ChangeSysctl, Target: SysctlMaxBacklog},
			want:     Value{Set: "1000", Effective: "1000"},
			equal:    [][2]string{{"1", "1\n"}, {"2000", " 2000"}},
			differ:   [][2]string{{"1", "2"}, {"1", "x"}},
			command:  "sysctl -w net.core.netdev_max_backlog=2000",
			perNetNS: true,
			stepwise: true,
		},
		rules.ChangeRPS: {
			approve:  rules.Change{Kind: rules.ChangeRPS, Target: "eth0/rx-0", Value: "3"},
			refuse:   rules.Change{Kind: rules.ChangeRPS, Target: "eth0/rx-0", Value: "0"},
			reason:   ReasonBound,
			read:     Key{Kind: rules.ChangeRPS, Target: "eth0/rx-0"},
			want:     Value{Set: "0", Effective: "0"},
			equal:    [][2]string{{"00000003", "3"}, {"00000000,00000003", "3\n"}},
			differ:   [][2]string{{"3", "7"}, {"3", "zz"}},
			command:  "echo 3 > /sys/class/net/eth0/queues/rx-0/rps_cpus",
			perNetNS: true,
		},
		rules.ChangeModule: {
			approve:      rules.Change{Kind: rules.ChangeModule, Target: "ip_vs_sh", Value: moduleLoaded},
			refuse:       rules.Change{Kind: rules.ChangeModule, Target: "nf_nat", Value: moduleLoaded},
			reason:       ReasonAllowlist,
			read:         Key{Kind: rules.ChangeModule, Target: "ip_vs_sh"},
			want:         Value{Set: moduleUnloaded, Effective: moduleUnloaded},
			equal:        [][2]string{{moduleLoaded, moduleLoaded}},
			differ:       [][2]string{{moduleLoaded, moduleUnloaded}},
			command:      "modprobe ip_vs_sh",
			irreversible: true,
		},
	}
}

// TestKindsContract runs every kind the host registers through its
// fixtures; a kind registered without them fails here.
func TestKindsContract(t *testing.T) {
	n := newNode(t)
	if err := os.WriteFile(filepath.Join(n.proc, "modules"), []byte("ip_vs 200704 0 - Live 0x0000000000000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := loadedSnapshot(t, n)
	s.KubeProxy.Running = false // the conntrack and module changes are then no one else's
	all := contracts()
	for name, kind := range n.host.Kinds() {
		t.Run(name, func(t *testing.T) {
			ct, ok := all[name]
			if !ok {
				t.Fatalf("kind %s has no contract fixture: add one to contracts()", name)
			}
			if kind.Name() != name {
				t.Errorf("registered as %s, named %s", name, kind.Name())
			}
			c := Change{Key: ct.approve.Key(), To: ct.approve.Value}
			if r := kind.Vet(s, &c); r.Refused() || c.From == "" {
				t.Errorf("Vet(%s=%s) = %+v, From %q; want approved with From", c.Key, c.To, r, c.From)
			}
			bad := Change{Key: ct.refuse.Key(), To: ct.refuse.Value}
			if r := kind.Vet(s, &bad); r.Reason != ct.reason || r.Why == "" {
				t.Errorf("Vet(%s=%s) = %+v; want refused as %s", bad.Key, bad.To, r, ct.reason)
			}
			got, err := kind.Read(context.Background(), ct.read)
			if err != nil || got != ct.want {
				t.Errorf("Read(%s) = %+v, %v; want %+v", ct.read, got, err, ct.want)
			}
			for _, p := range ct.equal {
				if !kind.Equal(p[0], p[1]) || !kind.Equal(p[1], p[0]) {
					t.Errorf("Equal(%q, %q) = false; want true", p[0], p[1])
				}
			}
			for _, p := range ct.differ {
				if kind.Equal(p[0], p[1]) {
					t.Errorf("Equal(%q, %q) = true; want false", p[0], p[1])
				}
			}
			if got := kind.Command(ct.approve.Key(), ct.approve.Value); got != ct.command {
				t.Errorf("Command = %q; want %q", got, ct.command)
			}
			if got := kind.Irreversible() != ""; got != ct.irreversible {
				t.Errorf("Irreversible() = %v; want %v", got, ct.irreversible)
			}
			if kind.PerNetNS() != ct.perNetNS || kind.Stepwise() != ct.stepwise {
				t.Errorf("PerNetNS, Stepwise = %v, %v; want %v, %v", kind.PerNetNS(), kind.Stepwise(), ct.perNetNS, ct.stepwise)
			}
			// With no host, a kind still vets, compares and renders, and
			// its I/O fails instead of touching this machine.
			bare, err := HostKinds(nil).Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bare.Read(context.Background(), ct.read); !errors.Is(err, detect.ErrNotSupported) {
				t.Errorf("Read without a host: %v", err)
			}
		})
	}
}

// TestRulesKindsAreRegistered: every kind of change the rules emit, on a
// node where every auto fix fires, has a registered kind, and so a vet, a
// reader and a writer on the host.
func TestRulesKindsAreRegistered(t *testing.T) {
	n := newNode(t)
	s := loadedSnapshot(t, n)
	kinds := n.host.Kinds()
	seen := map[string]bool{}
	for _, f := range rules.Evaluate(s, rules.DefaultConfig()).Findings {
		for _, c := range f.Fix.Changes {
			seen[c.Kind] = true
			if _, err := kinds.Lookup(c.Kind); err != nil {
				t.Errorf("%s plans a %s change, which no kind handles: %v", f.Rule, c.Kind, err)
			}
		}
	}
	for _, want := range []string{rules.ChangeFeature, rules.ChangeSysctl, rules.ChangeRPS, rules.ChangeModule} {
		if !seen[want] {
			t.Errorf("the fixture exercises no %s change", want)
		}
	}
	for _, k := range []Key{{Kind: "felix-override", Target: "node.a"}} {
		if _, err := n.host.Read(context.Background(), k); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Read of an unregistered kind: %v; want ErrNotAllowed", err)
		}
	}
}

// memKind is a kind outside the host, as a Kubernetes object will be: its
// values are comma-separated key=value lists, equal in any order, and it
// belongs to no network namespace.
type memKind struct{ values map[Key]string }

func (memKind) Name() string { return "test-object" }
func (memKind) Vet(s *detect.Snapshot, c *Change) Refusal {
	if c.Target != "node.a" {
		return refuse(ReasonAllowlist, "only node.a")
	}
	c.From = "A=true"
	return Refusal{}
}
func (m memKind) Read(ctx context.Context, k Key) (Value, error) {
	return Value{Set: m.values[k], Effective: m.values[k]}, nil
}
func (memKind) Writable(ctx context.Context, k Key) error { return nil }
func (m memKind) Write(ctx context.Context, k Key, v string) error {
	m.values[k] = v
	return nil
}
func (memKind) Equal(a, b string) bool {
	x, y := strings.Split(a, ","), strings.Split(b, ",")
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
func (memKind) Command(k Key, v string) string { return "kubectl apply " + k.Target + " " + v }
func (memKind) Irreversible() string           { return "" }
func (memKind) PerNetNS() bool                 { return false }
func (memKind) Stepwise() bool                 { return false }

// TestAKindInOneValue adds a kind through Host.More alone, and plans,
// applies, compares and rolls it back with no other change to tune.
func TestAKindInOneValue(t *testing.T) {
	n := newNode(t)
	k := Key{Kind: "test-object", Target: "node.a"}
	mk := memKind{values: map[Key]string{k: "A=true"}}
	n.host.More = []Kind{mk}
	tu := openTuner(t, t.TempDir(), n.host)
	f := rules.Finding{Rule: "r", Subject: "node.a", Summary: "s", Fix: rules.Fix{Auto: true,
		Changes: []rules.Change{{Kind: k.Kind, Target: k.Target, Value: "B=false,A=true"}}}}
	ctx := context.Background()
	out := tu.Apply(ctx, tu.Plan(n.snapshot(t), []rules.Finding{f}, PlanOptions{}))
	if len(out) != 1 || out[0].Result != Verified || out[0].Command != "kubectl apply node.a B=false,A=true" {
		t.Fatalf("apply: %v", out)
	}
	if !tu.Equal(k, "A=true,B=false", mk.values[k]) {
		t.Errorf("the Tuner does not compare by the kind")
	}
	back := tu.Rollback(ctx, false)
	if len(back) != 1 || back[0].Result != Restored || mk.values[k] != "A=true" {
		t.Errorf("rollback: %v, value %q", back, mk.values[k])
	}
	if p := Propose(n.snapshot(t), []rules.Finding{f}, PlanOptions{}); len(p.Changes) != 1 || p.Changes[0].Reason != ReasonAllowlist {
		t.Errorf("Propose knows only the built-in kinds: %+v", p.Changes)
	}
}

// TestRefusalReasons: each refusal of a plan carries its typed reason.
func TestRefusalReasons(t *testing.T) {
	n := newNode(t)
	s := loadedSnapshot(t, n)
	res := rules.Evaluate(s, rules.DefaultConfig())
	got := map[Key]Reason{}
	for _, c := range Propose(s, res.Findings, PlanOptions{}).Changes {
		got[c.Key] = c.Reason
	}
	want := map[Key]Reason{
		{Kind: rules.ChangeSysctl, Target: SysctlConntrackMax}:                                  ReasonOwner,
		{Kind: rules.ChangeModule, Target: "ip_vs_sh"}:                                          "",
		{Kind: rules.ChangeRPS, Target: "eth0/rx-0"}:                                            "",
		{Kind: rules.ChangeRPS, Target: "eth0/rx-1"}:                                            "",
		{Kind: rules.ChangeSysctl, Target: SysctlMaxBacklog}:                                    "",
		{Kind: rules.ChangeFeature, Target: "vxlan0", Setting: detect.FeatureTxChecksumGeneric}: "",
		{Kind: rules.ChangeSysctl, Target: SysctlBudget}:                                        "",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reasons (-want +got):\n%s", diff)
	}
	clash := rules.Finding{Rule: "other", Subject: "x", Fix: rules.Fix{Auto: true, Changes: []rules.Change{
		{Kind: rules.ChangeSysctl, Target: SysctlMaxBacklog, Value: "1500"}}}}
	dup := Propose(s, append(slices.Clone(res.Findings), clash), PlanOptions{Rules: []string{rules.SoftnetDrops, "other"}})
	if r := dup.Changes[len(dup.Changes)-1]; r.Reason != ReasonDuplicate {
		t.Errorf("a second value for one setting: %+v", r)
	}
	s.Kernel.Err = detect.Fail(errors.New("no osrelease"))
	p := Propose(s, res.Findings, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
	if len(p.Changes) != 1 || p.Changes[0].Reason != ReasonUnknown {
		t.Errorf("offload with an unreadable kernel: %+v", p.Changes)
	}
}

// TestApplyOnlyTakesItsOwnPlans: a plan that did not come from this
// Tuner's Plan (Propose's, which never saw the journal's holds and claims,
// or another Tuner's) writes nothing.
func TestApplyOnlyTakesItsOwnPlans(t *testing.T) {
	n := newNode(t)
	s := loadedSnapshot(t, n)
	findings := rules.Evaluate(s, rules.DefaultConfig()).Findings
	opts := PlanOptions{Rules: []string{rules.SoftnetDrops}}
	tu := openTuner(t, t.TempDir(), n.host)
	other := openTuner(t, t.TempDir(), n.host)
	ctx := context.Background()
	for name, p := range map[string]Plan{"Propose": Propose(s, findings, opts), "another Tuner": other.Plan(s, findings, opts)} {
		out := tu.Apply(ctx, p)
		if len(out) == 0 {
			t.Fatalf("%s: no outcomes", name)
		}
		for _, o := range out {
			if o.Result != Refused || o.Change.Reason != ReasonUnplanned || !errors.Is(o.Err, ErrNotAllowed) {
				t.Errorf("%s: %v (reason %q)", name, o, o.Change.Reason)
			}
		}
	}
	if got := readFile(t, filepath.Join(n.proc, "sys/net/core/netdev_max_backlog")); got != "1000" {
		t.Errorf("netdev_max_backlog = %s after refused plans", got)
	}
	edited := tu.Plan(s, findings, opts)
	edited.Changes = slices.Clone(edited.Changes)
	edited.Changes[0].To = "1000000"
	if out := tu.Apply(ctx, edited); len(out) == 0 || out[0].Result != Refused || out[0].Change.Reason != ReasonUnplanned {
		t.Errorf("a planned change edited to another value: %v", out)
	}
	if out := tu.Apply(ctx, tu.Plan(s, findings, opts)); len(out) == 0 || out[0].Result != Verified {
		t.Errorf("its own plan: %v", out)
	}
}

// TestAKindRegisteredAfterOpen: a kind added to Host.More after the Tuner
// was opened (cmd builds a Kubernetes client when it needs one) is the
// Tuner's as much as the Host's: planned, compared and rolled back by the
// kind, never taken for an unknown one the Host would still write.
func TestAKindRegisteredAfterOpen(t *testing.T) {
	n := newNode(t)
	k := Key{Kind: "test-object", Target: "node.a"}
	mk := memKind{values: map[Key]string{k: "A=true"}}
	tu := openTuner(t, t.TempDir(), n.host)
	n.host.More = []Kind{mk}
	f := rules.Finding{Rule: "r", Subject: "node.a", Summary: "s", Fix: rules.Fix{Auto: true,
		Changes: []rules.Change{{Kind: k.Kind, Target: k.Target, Value: "B=false,A=true"}}}}
	ctx := context.Background()
	out := tu.Apply(ctx, tu.Plan(n.snapshot(t), []rules.Finding{f}, PlanOptions{}))
	if len(out) != 1 || out[0].Result != Verified {
		t.Fatalf("apply: %v", out)
	}
	if !tu.Equal(k, "A=true,B=false", mk.values[k]) || !tu.Kinds().Equal(k, "A=true,B=false", mk.values[k]) {
		t.Errorf("the Tuner does not compare by the kind")
	}
	if back := tu.Rollback(ctx, false); len(back) != 1 || back[0].Result != Restored || mk.values[k] != "A=true" {
		t.Errorf("rollback: %v, value %q", back, mk.values[k])
	}
}

// chainKind is memKind whose change brings a follow-up change of its own
// kind on another target.
type chainKind struct{ memKind }

func (chainKind) FollowUps(c Change) []Change {
	return []Change{{Key: Key{Kind: c.Kind, Target: "node.b"}, To: c.To, Rule: c.Rule, Subject: c.Subject, vetted: true}}
}

// TestFollowUpRenderedByItsKind: a follow-up change of a registered kind
// outside the host is rendered by that kind, as the change that brought it.
func TestFollowUpRenderedByItsKind(t *testing.T) {
	n := newNode(t)
	a, b := Key{Kind: "test-object", Target: "node.a"}, Key{Kind: "test-object", Target: "node.b"}
	ck := chainKind{memKind{values: map[Key]string{a: "A=true", b: "A=true"}}}
	n.host.More = []Kind{ck}
	tu := openTuner(t, t.TempDir(), n.host)
	f := rules.Finding{Rule: "r", Subject: "node.a", Summary: "s", Fix: rules.Fix{Auto: true,
		Changes: []rules.Change{{Kind: a.Kind, Target: a.Target, Value: "B=false"}}}}
	out := tu.Apply(context.Background(), tu.Plan(n.snapshot(t), []rules.Finding{f}, PlanOptions{}))
	var got []string
	for _, o := range out {
		got = append(got, string(o.Result)+" "+o.Command)
	}
	want := []string{"verified kubectl apply node.a B=false", "verified kubectl apply node.b B=false"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
}
