package deploy_test

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodetune/nodetune/kube/kubetest"
)

// TestHelmInstall installs the chart on a real API server as docs/deploy.md
// says (namespace first, with its Pod Security labels), switches it to
// remediate and to the uninstall step with helm upgrade --reuse-values,
// and uninstalls it, checking the live DaemonSet after each step. It has
// an API server of its own: the shared one holds the kustomize objects of
// the same names, which Helm would rightly refuse to take over.
func TestHelmInstall(t *testing.T) {
	c := kubetest.ForTest(t)
	kubeconfig, err := c.Kubeconfig(t.TempDir(), "", c.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "nodetune", Labels: map[string]string{
		"app.kubernetes.io/name":             "nodetune",
		"pod-security.kubernetes.io/enforce": "privileged",
		"pod-security.kubernetes.io/warn":    "privileged",
		"pod-security.kubernetes.io/audit":   "privileged",
	}}}
	if _, err := c.Admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := helm(t, append(args, "--kubeconfig", kubeconfig, "--namespace", "nodetune")...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	daemonSet := func(step string) (args []string, caps []corev1.Capability) {
		t.Helper()
		ds, err := c.Admin.AppsV1().DaemonSets("nodetune").Get(ctx, "nodetune", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("after %s: %v", step, err)
		}
		ctr := ds.Spec.Template.Spec.Containers[0]
		if sc := ctr.SecurityContext; sc != nil && sc.Capabilities != nil {
			caps = sc.Capabilities.Add
		}
		return ctr.Args, caps
	}

	run("install", "nodetune", chartDir, "--set", "image.tag="+testTag)
	if args, caps := daemonSet("install"); !slices.Contains(args, "--mode=observe") || len(caps) != 0 {
		t.Errorf("after install: args %v, capabilities %v; want observe with none", args, caps)
	}
	run("upgrade", "nodetune", chartDir, "--reuse-values", "--set", "mode=remediate")
	if args, caps := daemonSet("upgrade to remediate"); !slices.Contains(args, "--mode=remediate") ||
		!slices.Equal(caps, []corev1.Capability{"NET_ADMIN"}) || slices.Contains(args, "--rollback-on-exit") {
		t.Errorf("after the upgrade to remediate: args %v, capabilities %v", args, caps)
	}
	run("upgrade", "nodetune", chartDir, "--reuse-values", "--set", "rollbackOnExit=true")
	if args, _ := daemonSet("upgrade with rollbackOnExit"); !slices.Contains(args, "--mode=remediate") ||
		!slices.Contains(args, "--rollback-on-exit") {
		t.Errorf("after the upgrade with rollbackOnExit: args %v; want remediate kept and --rollback-on-exit", args)
	}
	run("uninstall", "nodetune")
	if _, err := c.Admin.AppsV1().DaemonSets("nodetune").Get(ctx, "nodetune", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after uninstall the DaemonSet is still there (%v)", err)
	}
	if _, err := c.Admin.RbacV1().Roles("default").Get(ctx, "nodetune-events", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after uninstall the events Role in default is still there (%v)", err)
	}
	if _, err := c.Admin.RbacV1().Roles("nodetune").Get(ctx, "nodetune-peer-leases", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after uninstall the peer Lease Role is still there (%v)", err)
	}
}
