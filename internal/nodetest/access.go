package nodetest

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/kube/kubetest"
)

// How tests reach into a running node: kubectl, its logs, its pods'
// processes, the kubelet's metrics.

// LogTail returns the last lines of one of the node's program logs
// (kubelet, containerd, kube-controller-manager, kube-scheduler).
func (n *Node) LogTail(name string, lines int) string {
	b, err := os.ReadFile(filepath.Join(n.Dir, "logs", name+".log"))
	if err != nil {
		return err.Error()
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// Kubectl runs kubectl as the admin inside the node's network namespace,
// with stdin as its input, and returns its combined output.
func (n *Node) Kubectl(t testing.TB, stdin []byte, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=" + n.netns(), "--", tool(t, "kubectl"),
		"--kubeconfig=" + filepath.Join(n.Dir, "kubeconfig")}, args...)...)
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Apply applies rendered manifests (kustomize's or Helm's output) to the
// node's cluster with server-side apply, and fails t if they are refused.
func (n *Node) Apply(t testing.TB, manifests []byte) {
	t.Helper()
	if out, err := n.Kubectl(t, manifests, "apply", "--server-side", "--force-conflicts", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

// tool is kubetest.Tool.
func tool(t testing.TB, name string) string {
	t.Helper()
	return kubetest.Tool(t, name)
}

// PodPID returns the host pid of the main process of container in pod
// (namespace/name), for reading its credentials.
func (n *Node) PodPID(t testing.TB, pod, container string) int {
	t.Helper()
	ns, name, _ := strings.Cut(pod, "/")
	out, err := n.ctr("containers", "ls", "--quiet", fmt.Sprintf(
		`labels."io.kubernetes.container.name"==%s,labels."io.kubernetes.pod.name"==%s,labels."io.kubernetes.pod.namespace"==%s`, container, name, ns))
	if err != nil {
		t.Fatalf("ctr containers ls: %v: %s", err, out)
	}
	for _, id := range strings.Fields(out) {
		info, err := n.ctr("tasks", "ps", id)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(info, "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 0 {
				if pid, err := strconv.Atoi(f[0]); err == nil {
					return pid
				}
			}
		}
	}
	t.Fatalf("no running container %s in pod %s", container, pod)
	return 0
}

// KubeletMetrics returns the text of one of the kubelet's metrics
// endpoints, such as /metrics or /metrics/probes (its API accepts
// anonymous requests; its serving certificate is self-signed).
func (n *Node) KubeletMetrics(path string) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:     n.Side.DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the kubelet's own self-signed certificate
	}}
	resp, err := client.Get("https://" + net.JoinHostPort(n.IP(), "10250") + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the kubelet's %s: %s", path, resp.Status)
	}
	return string(b), nil
}
