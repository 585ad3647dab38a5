package kubetest

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// adminKubeconfigs are the admin kubeconfig files written so far, by
// cluster directory: one per cluster, since a test binary may start
// several (ForTest), each in a directory removed when it stops.
var (
	adminMu          sync.Mutex
	adminKubeconfigs = map[string]string{}
)

// adminKubeconfig returns the admin kubeconfig of c, written on first use.
func (c *Cluster) adminKubeconfig() (string, error) {
	adminMu.Lock()
	defer adminMu.Unlock()
	if p, ok := adminKubeconfigs[c.Dir]; ok {
		return p, nil
	}
	p, err := c.Kubeconfig(c.Dir, "", c.AdminToken)
	if err != nil {
		return "", err
	}
	adminKubeconfigs[c.Dir] = p
	return p, nil
}

// Kubectl runs kubectl (make deps builds it) as the admin against the
// cluster, from the working directory dir, and returns its combined
// output.
func (c *Cluster) Kubectl(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	kubectl := Tool(t, "kubectl")
	adminKubeconfig, err := c.adminKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig=" + adminKubeconfig}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Token returns a one-hour token for the service account ns/name, made
// through the TokenRequest API as the kubelet makes a pod's token.
func (c *Cluster) Token(ctx context.Context, ns, name string) (string, error) {
	exp := int64(time.Hour / time.Second)
	tr, err := c.Admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token for service account %s/%s: %w", ns, name, err)
	}
	return tr.Status.Token, nil
}

// CreateNode registers a Node named name, as a kubelet would, and deletes
// it when t ends.
func (c *Cluster) CreateNode(t testing.TB, name string) *corev1.Node {
	t.Helper()
	ctx := context.Background()
	n, err := c.Admin.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating Node %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := c.Admin.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting Node %s: %v", name, err)
		}
	})
	return n
}
