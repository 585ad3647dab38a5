package tune

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// errFakeConflict is the fake API server's answer to a write whose
// resourceVersion is not the object's.
var errFakeConflict = errors.New("conflict: the object has been modified")

// fakeFelix is an API server holding FelixConfigurations, each with a
// resourceVersion that every write bumps.
type fakeFelix struct {
	mu     sync.Mutex
	objs   map[string]fakeObj
	rv     int
	writes int
}

type fakeObj struct{ spec, rv string }

func newFakeFelix(specs map[string]string) *fakeFelix {
	f := &fakeFelix{objs: map[string]fakeObj{}, rv: 100}
	for name, spec := range specs {
		f.put(name, spec)
	}
	return f
}

func (f *fakeFelix) put(name, spec string) {
	f.rv++
	f.objs[name] = fakeObj{spec, strconv.Itoa(f.rv)}
}

func (f *fakeFelix) APIVersion() string { return "projectcalico.org/v3" }
func (f *fakeFelix) GetSpec(ctx context.Context, name string) (string, string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.objs[name]
	return o.spec, o.rv, ok, nil
}
func (f *fakeFelix) CreateSpec(ctx context.Context, name, spec string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.objs[name]; ok {
		return fmt.Errorf("%s already exists", name)
	}
	f.writes++
	f.put(name, spec)
	return nil
}
func (f *fakeFelix) UpdateSpec(ctx context.Context, name, rv, spec string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o, ok := f.objs[name]; !ok || o.rv != rv {
		return errFakeConflict
	}
	f.writes++
	f.put(name, spec)
	return nil
}
func (f *fakeFelix) DeleteObject(ctx context.Context, name, rv string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o, ok := f.objs[name]; !ok || o.rv != rv {
		return errFakeConflict
	}
	f.writes++
	delete(f.objs, name)
	return nil
}

// objects is what probes would read from f for node.
func (f *fakeFelix) objects(t *testing.T, node string) detect.FelixObjects {
	t.Helper()
	out := detect.FelixObjects{Read: true, APIVersion: f.APIVersion(), Node: node}
	read := func(name string) detect.FelixObject {
		spec, rv, ok, _ := f.GetSpec(context.Background(), name)
		if !ok {
			return detect.FelixObject{}
		}
		c, err := detect.FelixSpec(spec)
		if err != nil {
			t.Fatal(err)
		}
		return detect.FelixObject{Exists: true, ResourceVersion: rv, Spec: c}
	}
	out.Default, out.NodeObj = read("default"), read("node."+node)
	return out
}

// felixObjects are objects read for node: default's spec, and node.<node>'s
// ("" when it does not exist).
func felixObjects(node, global, own string) detect.FelixObjects {
	f := detect.FelixObjects{Read: true, APIVersion: "projectcalico.org/v3", Node: node,
		Default: detect.FelixObject{Exists: true, ResourceVersion: "1", Spec: global}}
	if own != "" {
		f.NodeObj = detect.FelixObject{Exists: true, ResourceVersion: "2", Spec: own}
	}
	return f
}

// felixNode is a fixture node whose VXLAN device Felix owns (vxlan.calico,
// the same device as vxlan0), with an API server holding default
// (ChecksumOffloadBroken=true) and, when own is not "", node.n1.
func felixNode(t *testing.T, own string) (*node, *fakeFelix, *detect.Snapshot) {
	n := newNode(t)
	n.et.devs["vxlan.calico"] = n.et.devs["vxlan0"]
	specs := map[string]string{"default": `{"featureDetectOverride":"SNATFullyRandom=false,ChecksumOffloadBroken=true","vxlanEnabled":true}`}
	if own != "" {
		specs["node.n1"] = own
	}
	api := newFakeFelix(specs)
	n.host.More = []Kind{NewFelixKind(api)}
	return n, api, felixSnapshot(t, n, api)
}

// felixSnapshot is what probes read now on a felixNode.
func felixSnapshot(t *testing.T, n *node, api *fakeFelix) *detect.Snapshot {
	s := loadedSnapshot(t, n)
	s.CNI = detect.CNI{Name: detect.CNICalico, FelixRunning: true}
	s.Tunnels.Devices[0].Name = "vxlan.calico"
	s.Felix = api.objects(t, "n1")
	return s
}

// felixFinding is tunnel-tx-checksum-off for vxlan.calico, owned by Felix,
// as rules make it with --calico.cooperate.
func felixFinding(s *detect.Snapshot) rules.Finding {
	for _, f := range rules.Evaluate(s, rules.DefaultConfig()).Findings {
		if f.Rule == rules.TunnelTxChecksumOff {
			return f
		}
	}
	return rules.Finding{}
}

// TestFelixVetMerges: the spec to write carries every key Felix applies
// on the node, only ChecksumOffloadBroken changing, and every other field
// of node.<name>; a malformed string or spec refuses the change, and
// nothing is written.
func TestFelixVetMerges(t *testing.T) {
	cases := []struct {
		name         string
		global, own  string
		from, to     string
		reason       Reason
		notInSnaphot bool
	}{
		{name: "no node object", global: `{"featureDetectOverride":"SNATFullyRandom=false,ChecksumOffloadBroken=true"}`,
			from: detect.FelixAbsent, to: `{"featureDetectOverride":"SNATFullyRandom=false,ChecksumOffloadBroken=false"}`},
		{name: "default sets nothing", global: `{"vxlanEnabled":true}`,
			from: detect.FelixAbsent, to: `{"featureDetectOverride":"ChecksumOffloadBroken=false"}`},
		{name: "empty default string", global: `{"featureDetectOverride":""}`,
			from: detect.FelixAbsent, to: `{"featureDetectOverride":"ChecksumOffloadBroken=false"}`},
		{name: "node object without the field", global: `{"featureDetectOverride":"A=true"}`, own: `{"logSeverityScreen":"Debug"}`,
			from: `{"logSeverityScreen":"Debug"}`, to: `{"featureDetectOverride":"A=true,ChecksumOffloadBroken=false","logSeverityScreen":"Debug"}`},
		{name: "node string replaces default's", global: `{"featureDetectOverride":"A=true"}`,
			own:  `{"featureDetectOverride":"B=false,ChecksumOffloadBroken=true,"}`,
			from: `{"featureDetectOverride":"B=false,ChecksumOffloadBroken=true,"}`, to: `{"featureDetectOverride":"B=false,ChecksumOffloadBroken=false"}`},
		{name: "malformed default", global: `{"featureDetectOverride":"A = true"}`, reason: ReasonGate},
		{name: "malformed node string", global: `{}`, own: `{"featureDetectOverride":"A"}`, reason: ReasonGate},
		{name: "field not a string", global: `{"featureDetectOverride":7}`, reason: ReasonGate},
		{name: "not read", global: `{}`, reason: ReasonUnknown, notInSnaphot: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			s := loadedSnapshot(t, n)
			if !tc.notInSnaphot {
				s.Felix = felixObjects("n1", tc.global, tc.own)
			}
			c := Change{Key: FelixKey("n1"), To: felixEntry, Subject: "vxlan0"}
			r := (&FelixKind{}).Vet(s, &c)
			if r.Reason != tc.reason {
				t.Fatalf("Vet = %+v; want reason %q", r, tc.reason)
			}
			if tc.reason != "" {
				return
			}
			if diff := cmp.Diff([2]string{tc.from, tc.to}, [2]string{c.From, c.To}); diff != "" {
				t.Errorf("from, to (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFelixVetGates: only this node's object, only
// ChecksumOffloadBroken=false, and only where tx offload may go on.
func TestFelixVetGates(t *testing.T) {
	n := newNode(t)
	s := loadedSnapshot(t, n)
	s.Felix = felixObjects("n1", `{}`, "")
	for _, c := range []Change{
		{Key: FelixKey("n2"), To: felixEntry},
		{Key: Key{Kind: rules.ChangeFelixConfiguration, Target: "default", Setting: FelixSetting}, To: felixEntry},
		{Key: FelixKey("n1"), To: "SNATFullyRandom=false"},
	} {
		if r := (&FelixKind{}).Vet(s, &c); r.Reason != ReasonAllowlist {
			t.Errorf("Vet(%s=%s) = %+v; want allowlist", c.Key, c.To, r)
		}
	}
	s.UDP.Err = detect.Fail(errors.New("no /proc/net/snmp"))
	c := Change{Key: FelixKey("n1"), To: felixEntry, Subject: "vxlan0"}
	if r := (&FelixKind{}).Vet(s, &c); r.Reason != ReasonUnknown {
		t.Errorf("Vet with the checksum counters unreadable = %+v; want unknown", r)
	}
}

// TestFelixKindWrites: every write is conditional on the object as last
// read; another writer in between is a conflict, and nothing is written.
func TestFelixKindWrites(t *testing.T) {
	ctx := context.Background()
	api := newFakeFelix(nil)
	k := NewFelixKind(api)
	key := FelixKey("n1")
	if err := k.Write(ctx, key, `{"a":1}`); !errors.Is(err, ErrFelixUnread) {
		t.Fatalf("a write before a read: %v", err)
	}
	v, err := k.Read(ctx, key)
	if err != nil || v.Set != detect.FelixAbsent {
		t.Fatalf("Read = %+v, %v", v, err)
	}
	if err := k.Write(ctx, key, `{"b": 2, "a": 1}`); err != nil {
		t.Fatal(err)
	}
	if v, _ := k.Read(ctx, key); v.Set != `{"a":1,"b":2}` {
		t.Fatalf("created %+v", v)
	}
	api.mu.Lock()
	api.put("node.n1", `{"other":"writer"}`)
	api.mu.Unlock()
	if err := k.Write(ctx, key, `{"a":3}`); !errors.Is(err, errFakeConflict) {
		t.Fatalf("a write over another writer's change: %v", err)
	}
	if spec, _, _, _ := api.GetSpec(ctx, "node.n1"); spec != `{"other":"writer"}` {
		t.Fatalf("the other writer's object was clobbered: %s", spec)
	}
	if _, err := k.Read(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := k.Write(ctx, key, detect.FelixAbsent); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := api.GetSpec(ctx, "node.n1"); ok {
		t.Fatalf("not deleted")
	}
	if _, err := k.Read(ctx, Key{Kind: rules.ChangeFelixConfiguration, Target: "default", Setting: FelixSetting}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("reading default through the kind: %v", err)
	}
}

// TestFelixCooperation: the override is planned although the finding
// names Felix as owner (the object is a different subject), offload is
// refused as owned until the override is journaled and in place, then
// planned; rollback deletes the object nodetune created and turns offload
// off again.
func TestFelixCooperation(t *testing.T) {
	ctx := context.Background()
	n, api, s := felixNode(t, "")
	f := felixFinding(s)
	if f.Owner == nil || f.Owner.Name != detect.OwnerFelix || len(f.Fix.Changes) != 2 {
		t.Fatalf("finding: owner %+v, changes %+v", f.Owner, f.Fix.Changes)
	}
	tu := openTuner(t, t.TempDir(), n.host)
	p := tu.Plan(s, []rules.Finding{f}, PlanOptions{})
	got := map[string]Reason{}
	for _, c := range p.Changes {
		got[c.Kind] = c.Reason
	}
	if diff := cmp.Diff(map[string]Reason{rules.ChangeFelixConfiguration: "", rules.ChangeFeature: ReasonOwner}, got); diff != "" {
		t.Fatalf("first plan (-want +got):\n%s", diff)
	}
	out := tu.Apply(ctx, p)
	if len(out) != 2 || out[0].Result != Verified || out[1].Result != Refused {
		t.Fatalf("apply: %v", out)
	}
	spec, _, ok, _ := api.GetSpec(ctx, "node.n1")
	if want := `{"featureDetectOverride":"SNATFullyRandom=false,ChecksumOffloadBroken=false"}`; !ok || spec != want {
		t.Fatalf("node.n1 = %q (exists %v); want %s", spec, ok, want)
	}

	// Someone else's identical override, not in the journal, does not open
	// the gate: only nodetune's own journaled one does.
	other := openTuner(t, t.TempDir(), n.host)
	s2 := felixSnapshot(t, n, api)
	if p := other.Plan(s2, []rules.Finding{felixFinding(s2)}, PlanOptions{}); countApproved(p, rules.ChangeFeature) != 0 {
		t.Errorf("a Tuner whose journal holds no override planned offload: %+v", p.Approved())
	}
	// The snapshot must show the override in place too.
	s3 := felixSnapshot(t, n, api)
	s3.Felix = felixObjects("n1", `{}`, "")
	if p := tu.Plan(s3, []rules.Finding{felixFinding(s3)}, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}}); countApproved(p, rules.ChangeFeature) != 0 {
		t.Errorf("offload planned where the snapshot does not show the override: %+v", p.Changes)
	}

	p2 := tu.Plan(s2, []rules.Finding{felixFinding(s2)}, PlanOptions{})
	if countApproved(p2, rules.ChangeFeature) != 1 {
		t.Fatalf("second plan: %+v", p2.Changes)
	}
	out = tu.Apply(ctx, p2)
	if len(out) == 0 || out[0].Result != Unchanged || out[1].Result != Verified {
		t.Fatalf("second apply: %v", out)
	}
	back := tu.Rollback(ctx, false)
	for _, o := range back {
		if o.Result != Restored {
			t.Errorf("rollback: %v", o)
		}
	}
	if _, _, ok, _ := api.GetSpec(ctx, "node.n1"); ok {
		t.Errorf("rollback left node.n1, which nodetune created")
	}
	if v, _ := n.host.Read(ctx, Key{Kind: rules.ChangeFeature, Target: "vxlan.calico", Setting: detect.FeatureTxChecksumGeneric}); v.Effective != off {
		t.Errorf("offload after rollback: %+v", v)
	}
}

// TestFelixRollbackRestoresOrReports: rollback writes an existing object's
// spec back exactly; one another writer changed since is a conflict, left
// as that writer made it.
func TestFelixRollbackRestoresOrReports(t *testing.T) {
	ctx := context.Background()
	own := `{"featureDetectOverride":"B=true","logSeverityScreen":"Debug"}`
	for _, meddle := range []bool{false, true} {
		n, api, s := felixNode(t, own)
		tu := openTuner(t, t.TempDir(), n.host)
		out := tu.Apply(ctx, tu.Plan(s, []rules.Finding{felixFinding(s)}, PlanOptions{}))
		if out[0].Result != Verified {
			t.Fatalf("apply: %v", out)
		}
		want, result := own, Restored
		if meddle {
			want, result = `{"someone":"else"}`, Conflict
			api.mu.Lock()
			api.put("node.n1", want)
			api.mu.Unlock()
		}
		back := tu.Rollback(ctx, false)
		if len(back) != 1 || back[0].Result != result {
			t.Errorf("meddled %v: rollback %v; want %s", meddle, back, result)
		}
		if spec, _, _, _ := api.GetSpec(ctx, "node.n1"); !detect.FelixValuesEqual(spec, want) {
			t.Errorf("meddled %v: node.n1 = %s; want %s", meddle, spec, want)
		}
	}
}

func countApproved(p Plan, kind string) int {
	n := 0
	for _, c := range p.Approved() {
		if c.Kind == kind {
			n++
		}
	}
	return n
}
