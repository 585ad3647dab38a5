package kube

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/felixtest"
	"github.com/nodetune/nodetune/kube/kubetest"
)

// fakeCalico serves the discovery documents of the groups it is given
// (group/version -> status, 200 listing felixconfigurations) and
// FelixConfiguration objects from objects, recording every request that
// is not a GET.
type fakeCalico struct {
	discovery map[string]int
	objects   map[string]string // name -> JSON
	mu        sync.Mutex
	writes    []string
}

func (f *fakeCalico) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		f.mu.Lock()
		f.writes = append(f.writes, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		http.Error(w, "no writes here", http.StatusMethodNotAllowed)
		return
	}
	for gv, code := range f.discovery {
		if r.URL.Path == "/apis/"+gv {
			if code != http.StatusOK {
				http.Error(w, "", code)
				return
			}
			_, _ = w.Write([]byte(`{"kind":"APIResourceList","groupVersion":"` + gv + `","resources":[{"name":"felixconfigurations","kind":"FelixConfiguration"}]}`))
			return
		}
		prefix := "/apis/" + gv + "/felixconfigurations/"
		if name, ok := strings.CutPrefix(r.URL.Path, prefix); ok && code == http.StatusOK {
			if obj, ok := f.objects[name]; ok {
				_, _ = w.Write([]byte(obj))
				return
			}
		}
	}
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"kind":"Status","status":"Failure","reason":"NotFound","code":404}`))
}

func fakeClient(t *testing.T, h http.Handler) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := NewClient(&Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDiscoverFelixConfigs(t *testing.T) {
	v3, crd := CalicoAPIGroup+"/"+CalicoAPIVersion, CalicoCRDGroup+"/"+CalicoCRDVersion
	tests := []struct {
		name      string
		discovery map[string]int
		want      string
		warning   bool
		err       error
	}{
		{name: "Calico API server preferred", discovery: map[string]int{v3: 200, crd: 200}, want: v3},
		{name: "CRDs only", discovery: map[string]int{crd: 200}, want: crd, warning: true},
		{name: "Calico API server registered but down", discovery: map[string]int{v3: 503, crd: 200}, want: crd, warning: true},
		{name: "no Calico", discovery: map[string]int{}, err: ErrNoCalicoAPI},
		{name: "discovery forbidden", discovery: map[string]int{v3: 403}, err: ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc, err := DiscoverFelixConfigs(context.Background(), fakeClient(t, &fakeCalico{discovery: tt.discovery}))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fc.APIVersion() != tt.want || (fc.Warning != "") != tt.warning {
				t.Errorf("got %s with warning %q; want %s, warning %t", fc.APIVersion(), fc.Warning, tt.want, tt.warning)
			}
		})
	}
}

// TestPlanNodeOverrideMalformed: a string Calico's API would reject, in
// default or in node.<name>, is a clear error and nothing is written.
func TestPlanNodeOverrideMalformed(t *testing.T) {
	crd := CalicoCRDGroup + "/" + CalicoCRDVersion
	for name, objects := range map[string]map[string]string{
		"default": {"default": `{"metadata":{"name":"default","resourceVersion":"1"},"spec":{"featureDetectOverride":"SNATFullyRandom=false, ChecksumOffloadBroken=true"}}`},
		"per-node": {
			"default": `{"metadata":{"name":"default","resourceVersion":"1"},"spec":{"featureDetectOverride":"SNATFullyRandom=false"}}`,
			"node.n1": `{"metadata":{"name":"node.n1","resourceVersion":"2"},"spec":{"featureDetectOverride":"ChecksumOffloadBroken"}}`,
		},
		"not a string": {"node.n1": `{"metadata":{"name":"node.n1","resourceVersion":"2"},"spec":{"featureDetectOverride":7}}`},
	} {
		t.Run(name, func(t *testing.T) {
			fake := &fakeCalico{discovery: map[string]int{crd: 200}, objects: objects}
			c := fakeClient(t, fake)
			fcs, err := DiscoverFelixConfigs(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			p, err := fcs.PlanNodeOverride(context.Background(), "n1", detect.FelixOverrideKey, "false", "")
			if err == nil || p != nil {
				t.Fatalf("planned %+v, want an error", p)
			}
			if name != "not a string" && (!errors.Is(err, detect.ErrMalformedOverride) || !strings.Contains(err.Error(), name)) {
				t.Errorf("err = %v, want ErrMalformedOverride naming the %s object", err, name)
			}
			if len(fake.writes) != 0 {
				t.Errorf("wrote %v", fake.writes)
			}
		})
	}
}

func TestFelixOverridePlanDiffAndCommand(t *testing.T) {
	var before FelixConfiguration
	if err := json.Unmarshal([]byte(`{"apiVersion":"crd.projectcalico.org/v1","kind":"FelixConfiguration",
		"metadata":{"name":"node.w1","resourceVersion":"42"},
		"spec":{"logSeverityScreen":"Info","featureDetectOverride":"SNATFullyRandom=false"}}`), &before); err != nil {
		t.Fatal(err)
	}
	after := before.Clone()
	after.SetSpecString(featureDetectOverride, "SNATFullyRandom=false,ChecksumOffloadBroken=false")
	p := &FelixOverridePlan{Name: "node.w1", APIVersion: "crd.projectcalico.org/v1", Before: &before, After: after,
		Override: "SNATFullyRandom=false,ChecksumOffloadBroken=false", Changed: true, Install: detect.CalicoOperator}
	wantDiff := `FelixConfiguration node.w1 (crd.projectcalico.org/v1, resourceVersion 42)
 spec:
-  featureDetectOverride: "SNATFullyRandom=false"
+  featureDetectOverride: "SNATFullyRandom=false,ChecksumOffloadBroken=false"
   logSeverityScreen: "Info"
`
	if diff := cmp.Diff(wantDiff, p.Diff()); diff != "" {
		t.Errorf("diff (-want +got):\n%s", diff)
	}
	wantCmd := `kubectl patch felixconfigurations.crd.projectcalico.org node.w1 --type merge -p '{"metadata":{"resourceVersion":"42"},"spec":{"featureDetectOverride":"SNATFullyRandom=false,ChecksumOffloadBroken=false"}}'`
	if diff := cmp.Diff(wantCmd, p.Command()); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
	if notes := strings.Join(p.Notes(), "\n"); !strings.Contains(notes, "tigera-operator") {
		t.Errorf("notes do not name the operator install:\n%s", notes)
	}

	created := &FelixOverridePlan{Name: "node.it's", APIVersion: "projectcalico.org/v3", After: NewFelixConfiguration("node.it's"),
		Override: "ChecksumOffloadBroken=false", Changed: true}
	created.After.SetSpecString(featureDetectOverride, created.Override)
	wantDiff = `FelixConfiguration node.it's (projectcalico.org/v3): created
 spec:
+  featureDetectOverride: "ChecksumOffloadBroken=false"
`
	if diff := cmp.Diff(wantDiff, created.Diff()); diff != "" {
		t.Errorf("diff (-want +got):\n%s", diff)
	}
	wantCmd = `echo '{"apiVersion":"projectcalico.org/v3","kind":"FelixConfiguration","metadata":{"name":"node.it'\''s"},"spec":{"featureDetectOverride":"ChecksumOffloadBroken=false"}}' | kubectl create -f -`
	if diff := cmp.Diff(wantCmd, created.Command()); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
	if notes := strings.Join(created.Notes(), "\n"); !strings.Contains(notes, `kubectl delete felixconfigurations.projectcalico.org 'node.it'\''s'`) {
		t.Errorf("notes do not say how to undo a create:\n%s", notes)
	}
}

// calicoCluster is the test binary's API server with Calico's CRDs, and a
// client of nodetune's for it as the admin.
func calicoCluster(t *testing.T) (*kubetest.Cluster, *FelixConfigs) {
	t.Helper()
	c := kubetest.Get(t)
	felixtest.InstallCRDs(t, c)
	cl, err := NewClient(&Config{Host: c.URL, BearerToken: c.AdminToken, CAData: c.CAData, QPS: 100, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	fcs, err := DiscoverFelixConfigs(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	return c, fcs
}

// setDefault makes the default FelixConfiguration's spec spec (JSON).
func setDefault(t *testing.T, fcs *FelixConfigs, spec string) {
	t.Helper()
	ctx := context.Background()
	var want FelixConfiguration
	if err := json.Unmarshal([]byte(`{"metadata":{"name":"default"},"spec":`+spec+`}`), &want); err != nil {
		t.Fatal(err)
	}
	cur, err := fcs.Get(ctx, FelixDefault)
	if IsNotFound(err) {
		if _, err := fcs.Create(ctx, &want); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec = want.Spec
	if _, err := fcs.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
}

// TestFelixConfigsRealAPIServer writes node.<name> through Calico's real
// CRDs on the real kube-apiserver: discovery falls back to the CRDs with a
// warning; the plan carries default's keys over and writes nothing else;
// another writer's change between read and write is a conflict and stays;
// Restore deletes what was created and puts an existing object's spec
// back.
func TestFelixConfigsRealAPIServer(t *testing.T) {
	c, fcs := calicoCluster(t)
	ctx := context.Background()
	if fcs.APIVersion() != "crd.projectcalico.org/v1" || !strings.Contains(fcs.Warning, "projectcalico.org/v3") {
		t.Fatalf("discovered %s, warning %q; want the CRDs with a warning (no Calico API server here)", fcs.APIVersion(), fcs.Warning)
	}
	setDefault(t, fcs, `{"vxlanEnabled":true,"featureDetectOverride":"SNATFullyRandom=false,ChecksumOffloadBroken=true"}`)

	// node.n1 does not exist: the plan creates it.
	p, err := fcs.PlanNodeOverride(ctx, "n1", detect.FelixOverrideKey, "false", detect.CalicoManifest)
	if err != nil {
		t.Fatal(err)
	}
	if p.Before != nil || !p.Changed || p.Override != "SNATFullyRandom=false,ChecksumOffloadBroken=false" {
		t.Fatalf("plan = %+v", p)
	}
	written, err := fcs.Apply(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fcs.Get(ctx, "node.n1")
	if err != nil {
		t.Fatal(err)
	}
	if s, _, _ := got.SpecString(featureDetectOverride); s != p.Override || len(got.Spec) != 1 {
		t.Errorf("node.n1's spec = %s", got.Spec)
	}
	// The kubectl command of the same plan does the same by hand: it
	// creates, and a second run fails rather than overwrite.
	if out, err := runShell(t, c, p.Command()); err == nil || !strings.Contains(out, "AlreadyExists") {
		t.Errorf("the create command ran again over an existing object: %v\n%s", err, out)
	}
	// Planning again: nothing to change.
	again, err := fcs.PlanNodeOverride(ctx, "n1", detect.FelixOverrideKey, "false", "")
	if err != nil || again.Changed {
		t.Fatalf("plan after apply = %+v, %v; want no change", again, err)
	}
	// Restore deletes what nodetune created.
	if err := fcs.Restore(ctx, p.Before, written); err != nil {
		t.Fatal(err)
	}
	if _, err := fcs.Get(ctx, "node.n1"); !IsNotFound(err) {
		t.Fatalf("node.n1 after restore: %v, want not found", err)
	}

	// node.n2 exists with settings of its own, its string in force.
	var n2 FelixConfiguration
	_ = json.Unmarshal([]byte(`{"metadata":{"name":"node.n2","labels":{"team":"net"}},"spec":{"logSeverityScreen":"Debug","featureDetectOverride":"MASQFullyRandom=true"}}`), &n2)
	orig, err := fcs.Create(ctx, &n2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cur, err := fcs.Get(ctx, "node.n2"); err == nil {
			_ = fcs.Delete(ctx, "node.n2", cur.Metadata.ResourceVersion)
		}
	})
	p, err = fcs.PlanNodeOverride(ctx, "n2", detect.FelixOverrideKey, "false", "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Override != "MASQFullyRandom=true,ChecksumOffloadBroken=false" {
		t.Errorf("override = %q, want node.n2's keys kept (its string replaces default's)", p.Override)
	}
	wantDiff := "FelixConfiguration node.n2 (crd.projectcalico.org/v1, resourceVersion " + orig.Metadata.ResourceVersion + ")\n" +
		" spec:\n" +
		`-  featureDetectOverride: "MASQFullyRandom=true"` + "\n" +
		`+  featureDetectOverride: "MASQFullyRandom=true,ChecksumOffloadBroken=false"` + "\n" +
		`   logSeverityScreen: "Debug"` + "\n"
	if diff := cmp.Diff(wantDiff, p.Diff()); diff != "" {
		t.Errorf("diff (-want +got):\n%s", diff)
	}

	// Another writer changes node.n2 after the plan read it.
	other := orig.Clone()
	other.SetSpecString("logSeverityScreen", "Warning")
	if _, err := fcs.Update(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := fcs.Apply(ctx, p); !IsConflict(err) {
		t.Fatalf("applying a stale plan: %v, want a conflict", err)
	}
	// So does the kubectl command of the stale plan.
	if out, err := runShell(t, c, p.Command()); err == nil || !strings.Contains(out, "Conflict") && !strings.Contains(out, "modified") {
		t.Errorf("the stale patch command succeeded: %v\n%s", err, out)
	}
	cur, err := fcs.Get(ctx, "node.n2")
	if err != nil {
		t.Fatal(err)
	}
	if s, _, _ := cur.SpecString("logSeverityScreen"); s != "Warning" {
		t.Errorf("the other writer's change was clobbered: %s", cur.Spec)
	}

	// A fresh plan applies; Restore puts the spec back exactly, labels kept.
	p, err = fcs.PlanNodeOverride(ctx, "n2", detect.FelixOverrideKey, "false", "")
	if err != nil {
		t.Fatal(err)
	}
	written, err = fcs.Apply(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	// The kubectl patch command of this plan is now stale too: it
	// carries the resourceVersion the plan read.
	if out, err := runShell(t, c, p.Command()); err == nil {
		t.Errorf("the patch command applied over nodetune's own write:\n%s", out)
	}
	// A write by another in between makes Restore a conflict too.
	if err := fcs.Restore(ctx, p.Before, orig); !IsConflict(err) {
		t.Errorf("restoring from a stale object: %v, want a conflict", err)
	}
	if err := fcs.Restore(ctx, p.Before, written); err != nil {
		t.Fatal(err)
	}
	cur, err = fcs.Get(ctx, "node.n2")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p.Before.Spec, cur.Spec); diff != "" {
		t.Errorf("spec after restore (-before +now):\n%s", diff)
	}
	if cur.Metadata.Labels["team"] != "net" {
		t.Errorf("labels after restore: %v", cur.Metadata.Labels)
	}
	// Delete is conditional too.
	if err := fcs.Delete(ctx, "node.n2", written.Metadata.ResourceVersion); !IsConflict(err) {
		t.Errorf("deleting at a stale resourceVersion: %v, want a conflict", err)
	}
	if err := fcs.Delete(ctx, "node.n2", ""); !errors.Is(err, ErrNoResourceVersion) {
		t.Errorf("deleting without a resourceVersion: %v", err)
	}
}

// runShell runs a command line as the admin, kubectl in PATH.
func runShell(t *testing.T, c *kubetest.Cluster, line string) (string, error) {
	t.Helper()
	kubectl := kubetest.Tool(t, "kubectl")
	kc, err := c.Kubeconfig(t.TempDir(), "", c.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	return shellRun(line, kubectl, kc)
}

// FuzzFelixConfigurationJSON: any answer decodes to an error or to an
// object that encodes again with its spec unchanged.
func FuzzFelixConfigurationJSON(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"crd.projectcalico.org/v1","kind":"FelixConfiguration","metadata":{"name":"node.a","resourceVersion":"7","finalizers":["x"]},"spec":{"featureDetectOverride":"A=true","logSeverityScreen":"Info"}}`))
	f.Add([]byte(`{"metadata":null,"spec":null}`))
	f.Add([]byte(`{"spec":{"featureDetectOverride":7}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fc FelixConfiguration
		if err := json.Unmarshal(data, &fc); err != nil {
			return
		}
		_, _, _ = fc.SpecString(featureDetectOverride)
		body, err := fc.body("crd.projectcalico.org/v1")
		if err != nil {
			return // metadata that is not an object
		}
		enc, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("encoding %s: %v", data, err)
		}
		var again FelixConfiguration
		if err := json.Unmarshal(enc, &again); err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if len(again.Spec) != len(fc.Spec) || again.Metadata.Name != fc.Metadata.Name {
			t.Fatalf("round trip of %s gave %s", data, enc)
		}
	})
}

// TestFelixConfigsPrefersV3RealAPIServer: where projectcalico.org/v3 is
// served, discovery picks it without a warning, and objects are written
// and read there with that apiVersion.
func TestFelixConfigsPrefersV3RealAPIServer(t *testing.T) {
	c, _ := calicoCluster(t)
	ctx := context.Background()
	f := t.TempDir() + "/v3.yaml"
	if err := os.WriteFile(f, []byte(felixtest.V3CRD), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Kubectl(t, c.Dir, "apply", "--server-side", "-f", f); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() {
		// Gone from discovery before the next test, which expects the CRDs only.
		if out, err := c.Kubectl(t, c.Dir, "delete", "--wait", "crd/felixconfigurations.projectcalico.org"); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
		cl, _ := NewClient(&Config{Host: c.URL, BearerToken: c.AdminToken, CAData: c.CAData})
		for range 40 {
			if ok, err := serves(context.Background(), cl, CalicoAPIGroup, CalicoAPIVersion); err == nil && !ok {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Error("projectcalico.org/v3 is still discovered 10 s after its CRD was deleted")
	})
	if out, err := c.Kubectl(t, c.Dir, "wait", "--for=condition=established", "--timeout=60s", "crd/felixconfigurations.projectcalico.org"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cl, err := NewClient(&Config{Host: c.URL, BearerToken: c.AdminToken, CAData: c.CAData})
	if err != nil {
		t.Fatal(err)
	}
	var fcs *FelixConfigs
	for range 40 { // discovery follows the CRD within a few seconds
		if fcs, err = DiscoverFelixConfigs(ctx, cl); err == nil && fcs.Group == CalicoAPIGroup {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil || fcs.APIVersion() != "projectcalico.org/v3" || fcs.Warning != "" {
		t.Fatalf("discovered %+v, %v; want projectcalico.org/v3 without a warning", fcs, err)
	}
	p, err := fcs.PlanNodeOverride(ctx, "v3node", detect.FelixOverrideKey, "false", "")
	if err != nil {
		t.Fatal(err)
	}
	written, err := fcs.Apply(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		APIVersion string `json:"apiVersion"`
	}
	if err := cl.Get(ctx, "/apis/projectcalico.org/v3/felixconfigurations/node.v3node", nil, &obj); err != nil || obj.APIVersion != "projectcalico.org/v3" {
		t.Errorf("node.v3node in v3: %+v, %v", obj, err)
	}
	if err := fcs.Restore(ctx, p.Before, written); err != nil {
		t.Fatal(err)
	}
}
