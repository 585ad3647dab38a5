package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/felixtest"
	"github.com/nodetune/nodetune/kube"
	"github.com/nodetune/nodetune/kube/kubetest"
)

// calicoGrants is what the calico component adds to the agent's
// permissions: FelixConfiguration in both of Calico's API groups.
var calicoGrants = func() []string {
	var out []string
	for _, g := range []string{"projectcalico.org", "crd.projectcalico.org"} {
		for _, v := range []string{"get", "list", "watch", "create", "update", "patch", "delete"} {
			out = append(out, fmt.Sprintf("%s %s/felixconfigurations", v, g))
		}
	}
	slices.Sort(out)
	return out
}()

// applyCalicoComponent applies the observe overlay and the objects the
// calico component adds (its RBAC and admission policy, as make manifests
// renders them in remediate-calico), and removes the latter when t ends so
// that the other tests see the agent's permissions without them.
func applyCalicoComponent(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	kubectl(t, c, "apply", "--server-side", "-k", "deploy/overlays/observe")
	v, ok := render(t)["remediate-calico"]
	if !ok {
		t.Fatal("make manifests does not render remediate-calico")
	}
	var docs, names []string
	for _, d := range v.docs {
		var meta struct {
			Metadata struct{ Name string } `json:"metadata"`
		}
		if err := yaml.Unmarshal(d.data, &meta); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(meta.Metadata.Name, "calico") {
			docs = append(docs, string(d.data))
			names = append(names, strings.ToLower(d.gvk.Kind)+"."+d.gvk.Group+"/"+meta.Metadata.Name)
		}
	}
	if len(docs) != 4 {
		t.Fatalf("the calico component renders %d objects of its own (%v); want 4", len(docs), names)
	}
	f := filepath.Join(t.TempDir(), "calico.yaml")
	if err := os.WriteFile(f, []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, c, "apply", "--server-side", "--validate=strict", "-f", f)
	t.Cleanup(func() { kubectl(t, c, append([]string{"delete", "--wait"}, names...)...) })
}

// podToken returns a token for the agent's ServiceAccount bound to a pod
// on node, as the kubelet mounts it into the DaemonSet's pod there; the API
// server puts the pod's node into the token.
func podToken(t *testing.T, c *kubetest.Cluster, node string) string {
	t.Helper()
	ctx := context.Background()
	pod, err := c.Admin.CoreV1().Pods("nodetune").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "calico-rbac-" + node},
		Spec: corev1.PodSpec{
			NodeName: node, ServiceAccountName: "nodetune",
			Containers: []corev1.Container{{Name: "c", Image: "example.invalid/none:1"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a pod on %s: %v", node, err)
	}
	t.Cleanup(func() {
		zero := int64(0)
		_ = c.Admin.CoreV1().Pods("nodetune").Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	exp := int64(3600)
	tr, err := c.Admin.CoreV1().ServiceAccounts("nodetune").CreateToken(ctx, "nodetune", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: &exp,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a token for the pod on %s: %v", node, err)
	}
	return tr.Status.Token
}

// felixConfigsAs is nodetune's own FelixConfiguration client with token.
func felixConfigsAs(t *testing.T, c *kubetest.Cluster, token string) *kube.FelixConfigs {
	t.Helper()
	cl, err := kube.NewClient(&kube.Config{Host: c.URL, BearerToken: token, CAData: c.CAData, QPS: 100, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	fcs, err := kube.DiscoverFelixConfigs(context.Background(), cl)
	if err != nil {
		t.Fatalf("discovering Calico's API as the agent: %v", err)
	}
	return fcs
}

func felixConfiguration(t *testing.T, name, spec string) *kube.FelixConfiguration {
	t.Helper()
	var fc kube.FelixConfiguration
	if err := json.Unmarshal([]byte(`{"metadata":{"name":"`+name+`"},"spec":`+spec+`}`), &fc); err != nil {
		t.Fatal(err)
	}
	return &fc
}

// TestCalicoComponentRBAC proves the calico component's permissions
// sufficient and minimal, as the agent's ServiceAccount with the token its
// pod on node calico-a would have: it reads default, creates, updates and
// deletes node.calico-a through nodetune's own client, and is refused
// creating, updating or deleting node.calico-b or default; a token of the
// ServiceAccount that names no node may write nothing; and the component
// adds exactly FelixConfiguration's verbs to what the agent may do.
func TestCalicoComponentRBAC(t *testing.T) {
	c := kubetest.Get(t)
	felixtest.InstallCRDs(t, c)
	ctx := context.Background()
	admin := felixConfigsAs(t, c, c.AdminToken)

	// Without the component the agent may not touch FelixConfiguration.
	kubectl(t, c, "apply", "--server-side", "-k", "deploy/overlays/observe")
	before := grants(t, saClient(t, c, "nodetune", "nodetune"), "default")
	if slices.ContainsFunc(before, func(g string) bool { return strings.Contains(g, "felixconfigurations") }) {
		t.Fatalf("the agent may touch felixconfigurations without the calico component: %v", before)
	}
	applyCalicoComponent(t, c)

	var extra []string
	for _, g := range grants(t, saClient(t, c, "nodetune", "nodetune"), "default") {
		if !slices.Contains(before, g) {
			extra = append(extra, g)
		}
	}
	if diff := strings.Join(extra, "\n"); !slices.Equal(extra, calicoGrants) {
		t.Errorf("the calico component adds:\n%s\nwant exactly:\n%s", diff, strings.Join(calicoGrants, "\n"))
	}

	def, err := admin.Get(ctx, kube.FelixDefault)
	if kube.IsNotFound(err) {
		def, err = admin.Create(ctx, felixConfiguration(t, kube.FelixDefault, `{"featureDetectOverride":"SNATFullyRandom=false,ChecksumOffloadBroken=true"}`))
	}
	if err != nil {
		t.Fatal(err)
	}
	other, err := admin.Create(ctx, felixConfiguration(t, "node.calico-b", `{"logSeverityScreen":"Info"}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cur, err := admin.Get(context.Background(), "node.calico-b"); err == nil {
			_ = admin.Delete(context.Background(), "node.calico-b", cur.Metadata.ResourceVersion)
		}
		if cur, err := admin.Get(context.Background(), "node.calico-a"); err == nil {
			_ = admin.Delete(context.Background(), "node.calico-a", cur.Metadata.ResourceVersion)
		}
	})
	c.CreateNode(t, "calico-a")
	c.CreateNode(t, "calico-b")
	agentToken := podToken(t, c, "calico-a")
	agent := felixConfigsAs(t, c, agentToken)
	waitPolicy(t, c, agentToken)

	// Sufficient: the whole round of the per-node override, as the agent.
	p, err := agent.PlanNodeOverride(ctx, "calico-a", detect.FelixOverrideKey, "false", "")
	if err != nil {
		t.Fatalf("planning as the agent: %v", err)
	}
	written, err := agent.Apply(ctx, p)
	if err != nil {
		t.Fatalf("creating node.calico-a as the agent: %v", err)
	}
	upd := written.Clone()
	upd.SetSpecString("logSeverityScreen", "Debug")
	if written, err = agent.Update(ctx, upd); err != nil {
		t.Fatalf("updating node.calico-a as the agent: %v", err)
	}
	if err := agent.Restore(ctx, p.Before, written); err != nil {
		t.Fatalf("deleting node.calico-a as the agent: %v", err)
	}

	// Minimal: another node's object and default are refused, whatever
	// the verb, and stay as they were.
	if _, err := agent.Create(ctx, felixConfiguration(t, "node.calico-c", `{}`)); !kube.IsForbidden(err) {
		t.Errorf("creating node.calico-c as calico-a's agent: %v, want Forbidden", err)
	}
	for _, obj := range []*kube.FelixConfiguration{other, def} {
		changed := obj.Clone()
		changed.SetSpecString("featureDetectOverride", "ChecksumOffloadBroken=false")
		if _, err := agent.Update(ctx, changed); !kube.IsForbidden(err) {
			t.Errorf("updating %s as calico-a's agent: %v, want Forbidden", obj.Metadata.Name, err)
		}
		if err := agent.Delete(ctx, obj.Metadata.Name, obj.Metadata.ResourceVersion); !kube.IsForbidden(err) {
			t.Errorf("deleting %s as calico-a's agent: %v, want Forbidden", obj.Metadata.Name, err)
		}
		cur, err := admin.Get(ctx, obj.Metadata.Name)
		if err != nil || cur.Metadata.ResourceVersion != obj.Metadata.ResourceVersion {
			t.Errorf("%s changed: %v", obj.Metadata.Name, err)
		}
	}
	// A patch is an update to admission: refused too.
	if out, err := c.Kubectl(t, c.Dir, "--token="+agentToken, "patch", "felixconfigurations.crd.projectcalico.org",
		"default", "--type=merge", "-p", `{"spec":{"logSeverityScreen":"Debug"}}`); err == nil {
		t.Errorf("patching default as the agent succeeded:\n%s", out)
	}

	// A token that names no node (not a pod's) writes nothing.
	unbound := felixConfigsAs(t, c, mustToken(t, c))
	if _, err := unbound.Create(ctx, felixConfiguration(t, "node.calico-a", `{}`)); !kube.IsForbidden(err) {
		t.Errorf("creating node.calico-a with a token bound to no pod: %v, want Forbidden", err)
	}
}

// waitPolicy waits until the API server enforces the component's
// admission policy, which it loads some seconds after the policy and its
// binding are created: until a server-side dry run of creating another
// node's object as the agent is refused.
func waitPolicy(t *testing.T, c *kubetest.Cluster, token string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "probe.yaml")
	obj := "apiVersion: crd.projectcalico.org/v1\nkind: FelixConfiguration\nmetadata: {name: node.policy-probe}\nspec: {}\n"
	if err := os.WriteFile(f, []byte(obj), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := c.Kubectl(t, c.Dir, "--token="+token, "create", "--dry-run=server", "-f", f)
		if err != nil && strings.Contains(out, "node.policy-probe") && strings.Contains(out, "forbidden") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admission policy is not enforced 60 s after it was created: %v\n%s", err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func mustToken(t *testing.T, c *kubetest.Cluster) string {
	t.Helper()
	tok, err := c.Token(context.Background(), "nodetune", "nodetune")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestCalicoComponentPolicyV3CRDs: where projectcalico.org/v3 is served
// by CRDs (Calico's native v3 mode, no Calico API server), the agent
// writes through that group, and the admission policy limits it there
// too: its own node.<nodename> is written, default and another node's
// object are refused.
func TestCalicoComponentPolicyV3CRDs(t *testing.T) {
	c := kubetest.Get(t)
	felixtest.InstallCRDs(t, c)
	ctx := context.Background()
	f := filepath.Join(t.TempDir(), "v3.yaml")
	if err := os.WriteFile(f, []byte(felixtest.V3CRD), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, c, "apply", "--server-side", "-f", f)
	t.Cleanup(func() { kubectl(t, c, "delete", "--wait", "crd/felixconfigurations.projectcalico.org") })
	kubectl(t, c, "wait", "--for=condition=established", "--timeout=60s", "crd/felixconfigurations.projectcalico.org")
	applyCalicoComponent(t, c)

	admin, err := kube.NewClient(&kube.Config{Host: c.URL, BearerToken: c.AdminToken, CAData: c.CAData, QPS: 100, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	adminV3 := kube.NewFelixConfigs(admin, kube.CalicoAPIGroup, kube.CalicoAPIVersion)
	var def, other *kube.FelixConfiguration
	for range 40 { // the new group is served within a few seconds
		if def, err = adminV3.Create(ctx, felixConfiguration(t, kube.FelixDefault, `{"featureDetectOverride":"ChecksumOffloadBroken=true"}`)); err == nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("creating default in projectcalico.org/v3: %v", err)
	}
	if other, err = adminV3.Create(ctx, felixConfiguration(t, "node.calico-b", `{"logSeverityScreen":"Info"}`)); err != nil {
		t.Fatal(err)
	}
	c.CreateNode(t, "calico-a")
	c.CreateNode(t, "calico-b")
	agentToken := podToken(t, c, "calico-a")
	waitPolicy(t, c, agentToken)
	cl, err := kube.NewClient(&kube.Config{Host: c.URL, BearerToken: agentToken, CAData: c.CAData, QPS: 100, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	agent := kube.NewFelixConfigs(cl, kube.CalicoAPIGroup, kube.CalicoAPIVersion)

	p, err := agent.PlanNodeOverride(ctx, "calico-a", detect.FelixOverrideKey, "false", "")
	if err != nil {
		t.Fatalf("planning as the agent: %v", err)
	}
	written, err := agent.Apply(ctx, p)
	if err != nil {
		t.Fatalf("creating node.calico-a in v3 as the agent: %v", err)
	}
	if err := agent.Restore(ctx, p.Before, written); err != nil {
		t.Fatalf("deleting node.calico-a in v3 as the agent: %v", err)
	}
	if _, err := agent.Create(ctx, felixConfiguration(t, "node.calico-c", `{}`)); !kube.IsForbidden(err) {
		t.Errorf("creating node.calico-c in v3 as calico-a's agent: %v, want Forbidden", err)
	}
	for _, obj := range []*kube.FelixConfiguration{other, def} {
		changed := obj.Clone()
		changed.SetSpecString("featureDetectOverride", "ChecksumOffloadBroken=false")
		if _, err := agent.Update(ctx, changed); !kube.IsForbidden(err) {
			t.Errorf("updating %s in v3 as calico-a's agent: %v, want Forbidden", obj.Metadata.Name, err)
		}
		if err := agent.Delete(ctx, obj.Metadata.Name, obj.Metadata.ResourceVersion); !kube.IsForbidden(err) {
			t.Errorf("deleting %s in v3 as calico-a's agent: %v, want Forbidden", obj.Metadata.Name, err)
		}
		cur, err := adminV3.Get(ctx, obj.Metadata.Name)
		if err != nil || cur.Metadata.ResourceVersion != obj.Metadata.ResourceVersion {
			t.Errorf("%s in v3 changed: %v", obj.Metadata.Name, err)
		}
	}
}
