package deploy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/nodetune/nodetune/kube/kubetest"
)

// kubectl runs kubectl from the repository's top directory and fails t
// when it fails or prints a warning (a deprecated field, a Pod Security
// violation).
func kubectl(t *testing.T, c *kubetest.Cluster, args ...string) string {
	t.Helper()
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Kubectl(t, root, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for line := range strings.SplitSeq(out, "\n") {
		if strings.Contains(line, "Warning:") && !strings.Contains(line, knownWarning) {
			t.Errorf("kubectl %s warned: %s", strings.Join(args, " "), line)
		}
	}
	return out
}

// knownWarning is what kube-apiserver 1.34.0 and 1.34.1 say about every
// headless Service, because sessionAffinity defaults to None (kubernetes
// issue 134040, fixed by PR 134054 in later 1.34 releases).
const knownWarning = "spec.SessionAffinity is ignored for headless services"

// installCRDs installs nodetune's own test schemas of the Prometheus
// Operator's ServiceMonitor and PrometheusRule (testdata/crds) and waits
// until the API server serves every one of them. It reads the files itself
// for their names, which also lets go test's cache see when they change.
func installCRDs(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	files, err := filepath.Glob("testdata/crds/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in testdata/crds (%v)", err)
	}
	wait := []string{"wait", "--for=condition=Established", "--timeout=60s"}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(data, &crd); err != nil || crd.Kind != "CustomResourceDefinition" || crd.Metadata.Name == "" {
			t.Fatalf("%s is not one named CustomResourceDefinition (%v)", f, err)
		}
		wait = append(wait, "crd/"+crd.Metadata.Name)
	}
	kubectl(t, c, "apply", "--server-side", "-f", "deploy/testdata/crds/")
	kubectl(t, c, wait...)
}

// TestServerSideApply applies every rendered variant to a real API server,
// one after the other as an operator would switch between them, and checks
// after each that the live DaemonSet is that variant's: server-side apply
// must also take away what the previous variant added (NET_ADMIN, the
// writable mounts). It ends with the command docs/deploy.md gives.
func TestServerSideApply(t *testing.T) {
	c := kubetest.Get(t)
	vs := render(t)
	installCRDs(t, c)
	dir := t.TempDir()
	order := []string{"observe", "remediate", "remediate-load-modules", "remediate-prometheus-operator",
		"observe-prometheus-operator", "observe"}
	for _, name := range order {
		v, ok := vs[name]
		if !ok {
			t.Fatalf("no variant %s", name)
		}
		var docs [][]byte
		for _, d := range v.docs {
			docs = append(docs, d.data)
		}
		f := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(f, []byte(strings.Join(byteStrings(docs), "---\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		// Strict, so a misspelt field fails here instead of being pruned
		// (TestCRDsAreStrict checks that it does).
		kubectl(t, c, "apply", "--server-side", "--validate=strict", "-f", f)
		ds, err := c.Admin.AppsV1().DaemonSets("nodetune").Get(context.Background(), "nodetune", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("after applying %s: %v", name, err)
		}
		t.Run(name, func(t *testing.T) { checkDaemonSet(t, ds, expectations[name]) })
	}
	for _, kind := range []string{"servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com"} {
		if out := kubectl(t, c, "get", "-n", "nodetune", kind, "nodetune", "-o", "name"); !strings.Contains(out, "nodetune") {
			t.Errorf("%s nodetune was not created: %s", kind, out)
		}
	}
	kubectl(t, c, "apply", "--server-side", "-k", "deploy/overlays/observe")
	if _, err := c.Admin.AppsV1().DaemonSets("nodetune").Get(context.Background(), "nodetune", metav1.GetOptions{}); err != nil {
		t.Fatalf("kubectl apply -k deploy/overlays/observe did not leave the DaemonSet: %v", err)
	}
}

func byteStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

// permission is one request a service account may or may not make.
type permission struct {
	verb, group, resource, subresource, namespace string
}

func (p permission) String() string {
	r := p.resource
	if p.subresource != "" {
		r += "/" + p.subresource
	}
	if p.group != "" {
		r += "." + p.group
	}
	if p.namespace != "" {
		r += " in " + p.namespace
	}
	return p.verb + " " + r
}

// needed is everything the agent does through the API server (kube.Reporter).
var needed = []permission{
	{"get", "", "nodes", "", ""},
	{"list", "", "nodes", "", ""},
	{"watch", "", "nodes", "", ""},
	{"patch", "", "nodes", "status", ""},
	{"create", "events.k8s.io", "events", "", "default"},
	{"patch", "events.k8s.io", "events", "", "default"},
	// serve --peer.enable: one Lease per measured node (kube.Lease).
	{"get", "coordination.k8s.io", "leases", "", "nodetune"},
	{"create", "coordination.k8s.io", "leases", "", "nodetune"},
	{"update", "coordination.k8s.io", "leases", "", "nodetune"},
	// The TunnelChecksumErrors events about its own Node (kube.ChecksumEvents).
	{"get", "events.k8s.io", "events", "", "default"},
	{"list", "events.k8s.io", "events", "", "default"},
	{"watch", "events.k8s.io", "events", "", "default"},
}

// notNeeded are things the agent must not be able to do.
var notNeeded = []permission{
	{"list", "", "secrets", "", ""},
	{"get", "", "secrets", "", "nodetune"},
	{"delete", "", "nodes", "", ""},
	{"patch", "", "nodes", "", ""}, // labels, taints, spec
	{"update", "", "nodes", "status", ""},
	{"create", "", "events", "", "default"},
	{"create", "events.k8s.io", "events", "", "kube-system"},
	{"delete", "events.k8s.io", "events", "", "default"},
	{"update", "events.k8s.io", "events", "", "default"},
	{"list", "events.k8s.io", "events", "", "kube-system"},
	{"list", "", "events", "", ""},
	{"list", "", "pods", "", ""},
	{"create", "", "pods", "", "nodetune"},
	{"create", "", "serviceaccounts", "token", "nodetune"},
	{"patch", "apps", "daemonsets", "", "nodetune"},
	{"impersonate", "", "users", "", ""},
	{"delete", "coordination.k8s.io", "leases", "", "nodetune"},
	{"update", "coordination.k8s.io", "leases", "", "kube-node-lease"},
	{"update", "coordination.k8s.io", "leases", "", "kube-system"},
}

func saClient(t *testing.T, c *kubetest.Cluster, ns, name string) kubernetes.Interface {
	t.Helper()
	token, err := c.Token(context.Background(), ns, name)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(c.Config(token))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func allowed(t *testing.T, cs kubernetes.Interface, p permission) bool {
	t.Helper()
	r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: p.verb, Group: p.group, Resource: p.resource, Subresource: p.subresource, Namespace: p.namespace,
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("access review for %s: %v", p, err)
	}
	return r.Status.Allowed
}

// grants lists what a service account may do in ns, one
// "verb group/resource" string per permission, from a rules review.
func grants(t *testing.T, cs kubernetes.Interface, ns string) []string {
	t.Helper()
	r, err := cs.AuthorizationV1().SelfSubjectRulesReviews().Create(context.Background(), &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: ns},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("rules review in %s: %v", ns, err)
	}
	var out []string
	for _, rule := range r.Status.ResourceRules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					s := fmt.Sprintf("%s %s/%s", v, g, res)
					if len(rule.ResourceNames) > 0 {
						s += " " + strings.Join(rule.ResourceNames, ",")
					}
					out = append(out, s)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestRBAC checks, as the DaemonSet's own service account, that the
// shipped RBAC allows everything the agent does and nothing else: access
// reviews for each needed and each unneeded request, a real refused
// request, and a rules review whose difference from a service account
// without bindings is exactly the needed set.
func TestRBAC(t *testing.T) {
	c := kubetest.Get(t)
	kubectl(t, c, "apply", "--server-side", "-k", "deploy/overlays/observe")
	ctx := context.Background()
	nodetune := saClient(t, c, "nodetune", "nodetune")
	for _, p := range needed {
		if !allowed(t, nodetune, p) {
			t.Errorf("the agent may not %s; it needs to", p)
		}
	}
	for _, p := range notNeeded {
		if allowed(t, nodetune, p) {
			t.Errorf("the agent may %s; it does not need to", p)
		}
	}
	if _, err := nodetune.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing secrets as the agent: err = %v; want Forbidden", err)
	}

	// A service account with no bindings has what every authenticated
	// user has (discovery, self reviews); nodetune's must exceed it by
	// exactly the needed permissions.
	if _, err := c.Admin.CoreV1().ServiceAccounts("nodetune").Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "rbac-test-nobody"},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	nobody := saClient(t, c, "nodetune", "rbac-test-nobody")
	for _, ns := range []string{"default", "nodetune", "kube-system"} {
		var want []string
		for _, p := range needed {
			if p.namespace == "" || p.namespace == ns {
				r := p.resource
				if p.subresource != "" {
					r += "/" + p.subresource
				}
				want = append(want, fmt.Sprintf("%s %s/%s", p.verb, p.group, r))
			}
		}
		slices.Sort(want)
		base := grants(t, nobody, ns)
		var extra []string
		for _, g := range grants(t, nodetune, ns) {
			if !slices.Contains(base, g) {
				extra = append(extra, g)
			}
		}
		if !slices.Equal(extra, want) {
			t.Errorf("in namespace %s the agent may additionally %q; want exactly %q", ns, extra, want)
		}
	}
}

// TestCriticalPriorityAdmitted creates, as a server-side dry run that goes
// through admission, a pod from the observe DaemonSet's template, as the
// DaemonSet controller would: with the shipped ResourceQuota the API server
// admits system-node-critical in the nodetune namespace. The same pod in a
// namespace without that quota is refused, which shows why the quota ships.
// (Without a controller manager, the test makes the service account the
// pod names itself.)
func TestCriticalPriorityAdmitted(t *testing.T) {
	c := kubetest.Get(t)
	kubectl(t, c, "apply", "--server-side", "-k", "deploy/overlays/observe")
	ctx := context.Background()
	ds, err := c.Admin.AppsV1().DaemonSets("nodetune").Get(ctx, "nodetune", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := func(ns string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "nodetune-", Namespace: ns, Labels: ds.Spec.Template.Labels},
			Spec:       *ds.Spec.Template.Spec.DeepCopy(),
		}
	}
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	p := pod("nodetune")
	p.Spec.NodeName = "some-node"
	got, err := c.Admin.CoreV1().Pods("nodetune").Create(ctx, p, dryRun)
	if err != nil {
		t.Fatalf("the API server refuses the agent's pod: %v", err)
	}
	if got.Spec.Priority == nil || *got.Spec.Priority < 2000000000 {
		t.Errorf("the agent's pod has priority %v; want system-node-critical's", got.Spec.Priority)
	}
	const bare = "priority-test"
	if _, err := c.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: bare}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := c.Admin.CoreV1().ServiceAccounts(bare).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nodetune"}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	_, err = c.Admin.CoreV1().Pods(bare).Create(ctx, pod(bare), dryRun)
	if err == nil || !strings.Contains(err.Error(), "insufficient quota") {
		t.Errorf("system-node-critical outside a namespace with the quota: err = %v; want a refusal for want of quota", err)
	}
}
