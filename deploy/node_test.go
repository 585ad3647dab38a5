package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodetune/nodetune/internal/nodetest"
	"github.com/nodetune/nodetune/kube"
	"github.com/nodetune/nodetune/kube/kubetest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/tune"
)

// The tests in this file run the rendered DaemonSets on a real node: a
// kubelet with containerd and runc (internal/nodetest), in the network
// namespace of a VXLAN testbed, the image that `make image` builds
// imported into containerd. The pods run exactly as the manifests say; the
// credentials of the agent's process are read from the host.

// forNode is variant v's rendered manifests with the DaemonSet's image
// replaced by the test image.
func forNode(t *testing.T, v *variant) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, d := range v.docs {
		b.WriteString("---\n")
		b.Write(d.data)
		b.WriteString("\n")
	}
	ds := v.daemonSet(t)
	img := ds.Spec.Template.Spec.Containers[0].Image
	out := bytes.ReplaceAll(b.Bytes(), []byte("image: "+img), []byte("image: "+imageFor(ds.Spec.Template.Spec.Containers[0])))
	if bytes.Equal(out, b.Bytes()) {
		t.Fatalf("%s: image %s not found in the manifests", v.name, img)
	}
	return out
}

// rollout waits until the DaemonSet's pods are updated and Ready, which
// needs the readiness probe to pass.
func rollout(t *testing.T, n *nodetest.Node) {
	t.Helper()
	if out, err := n.Kubectl(t, nil, "-n", "nodetune", "rollout", "status", "daemonset/nodetune", "--timeout=180s"); err != nil {
		t.Fatalf("rollout: %v\n%s\nkubelet:\n%s", err, out, n.LogTail("kubelet", 30))
	}
}

// agentPod waits for the agent's only pod in mode to be Ready (the
// readiness probe passes), and checks that its container has never been
// restarted and that the kubelet recorded no failed liveness probe nor any
// other warning about it.
func agentPod(t *testing.T, n *nodetest.Node, mode string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	var p *corev1.Pod
	waitFor(t, "the agent's pod in "+mode+" mode to be Ready", func() error {
		pods, err := n.Cluster.Admin.CoreV1().Pods("nodetune").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=nodetune"})
		if err != nil {
			return err
		}
		var live []corev1.Pod
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				live = append(live, p)
			}
		}
		if len(live) != 1 {
			return fmt.Errorf("%d agent pods; want 1", len(live))
		}
		p = &live[0]
		if !slices.Contains(p.Spec.Containers[0].Args, "--mode="+mode) {
			return fmt.Errorf("pod %s runs %v", p.Name, p.Spec.Containers[0].Args)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if !cs.Ready {
				return fmt.Errorf("container %s of %s is not Ready", cs.Name, p.Name)
			}
		}
		if len(p.Status.ContainerStatuses) == 0 {
			return fmt.Errorf("pod %s has no container status yet", p.Name)
		}
		return nil
	})
	if p.Spec.NodeName != n.Name || p.Status.HostIP != n.IP() {
		t.Errorf("pod on node %s (%s); want %s (%s)", p.Spec.NodeName, p.Status.HostIP, n.Name, n.IP())
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.RestartCount != 0 || cs.State.Running == nil {
			t.Errorf("container %s: restarts %d, state %+v", cs.Name, cs.RestartCount, cs.State)
		}
	}
	evs, err := n.Cluster.Admin.CoreV1().Events("nodetune").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + p.Name})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		// The agent answers /readyz with 503 until its first probe cycle
		// is done, and the kubelet may probe before that: a readiness
		// failure before the container is Ready is expected. Any other
		// warning (a liveness failure, a back-off) is not.
		if e.Type == corev1.EventTypeWarning && !strings.HasPrefix(e.Message, "Readiness probe failed") {
			t.Errorf("event %s on %s: %s", e.Reason, p.Name, e.Message)
		}
	}
	return p
}

// logs returns `kubectl logs` of the agent's pod.
func logs(t *testing.T, n *nodetest.Node, pod string) string {
	t.Helper()
	out, err := n.Kubectl(t, nil, "-n", "nodetune", "logs", pod)
	if err != nil {
		t.Fatalf("kubectl logs: %v\n%s", err, out)
	}
	return out
}

// checkPodCreds reads the credentials of the agent's process on the
// host and compares them with docs/deploy.md.
func checkPodCreds(t *testing.T, n *nodetest.Node, pod *corev1.Pod, p promise) {
	t.Helper()
	c, err := readCreds(n.PodPID(t, pod.Namespace+"/"+pod.Name, "nodetune"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("agent process: uid %d, CapEff %016x, CapBnd %016x, NoNewPrivs %v, Seccomp %d", c.UID, c.CapEff, c.CapBnd, c.NoNewPrivs, c.Seccomp)
	for _, b := range p.check(c) {
		t.Error(b)
	}
}

// condition returns the agent's condition on the Node, or nil.
func condition(t *testing.T, n *nodetest.Node) *corev1.NodeCondition {
	t.Helper()
	node, err := n.Cluster.Admin.CoreV1().Nodes().Get(context.Background(), n.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range node.Status.Conditions {
		if c.Type == kube.ConditionType {
			return &c
		}
	}
	return nil
}

// TestDaemonSetOnNode rolls out the observe DaemonSet on a real node whose
// tunnel has tx checksum offload off, then the remediate one over it:
// observe reports the finding on the Node through its ServiceAccount and
// leaves the device alone; remediate, with NET_ADMIN alone, fixes it and
// journals the change on the host, where the journal outlives the pod.
func TestDaemonSetOnNode(t *testing.T) {
	imgs := buildImages(t)
	promises := docPromises(t)
	vs := render(t)
	n := nodetest.Start(t, nodetest.Options{Images: []string{imgs.Nodetune}})
	side := n.Side
	if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		t.Fatal(err)
	}

	if !t.Run("observe", func(t *testing.T) {
		n.Apply(t, forNode(t, vs["observe"]))
		rollout(t, n)
		pod := agentPod(t, n, "observe")
		checkPodCreds(t, n, pod, promises["observe"])
		waitFor(t, "the agent sets the Node condition", func() error {
			c := condition(t, n)
			if c == nil || c.Status != corev1.ConditionTrue || c.Reason != "TunnelTxChecksumOff" {
				return fmt.Errorf("condition %+v; want True, TunnelTxChecksumOff", c)
			}
			return nil
		})
		if offload(t, side) {
			t.Error("observe mode switched tx checksum offload on")
		}
		if l := logs(t, n, pod.Name); !strings.Contains(l, "reporting to Kubernetes") || !strings.Contains(l, "set the node condition") {
			t.Errorf("kubectl logs does not show the agent reporting to Kubernetes:\n%s", l)
		}
		if entries, _ := os.ReadDir(n.StateDir); len(entries) != 0 {
			t.Errorf("observe wrote into the host's /var/lib/nodetune: %v", entries)
		}
	}) {
		return
	}

	if !t.Run("tls-basic-auth", func(t *testing.T) { probesWithTLSAndBasicAuth(t, n, vs["observe"]) }) {
		return
	}

	if !t.Run("remediate", func(t *testing.T) {
		n.Apply(t, forNode(t, vs["remediate"]))
		rollout(t, n)
		waitFor(t, "the agent fixes the tunnel", func() error {
			if !offload(t, side) {
				return fmt.Errorf("tx checksum offload still off on %s", side.Tunnel)
			}
			return nil
		})
		pod := agentPod(t, n, "remediate")
		checkPodCreds(t, n, pod, promises["remediate"])
		journal := filepath.Join(n.StateDir, tune.JournalFile)
		before, err := os.ReadFile(journal)
		if err != nil || !bytes.Contains(before, []byte(side.Tunnel)) {
			t.Fatalf("the journal on the host does not record the change to %s: %v\n%s", side.Tunnel, err, before)
		}
		if l := logs(t, n, pod.Name); !strings.Contains(l, `"remediated"`) || !strings.Contains(l, side.Tunnel) {
			t.Errorf("kubectl logs does not show the fix:\n%s", l)
		}

		// Deleted, the pod is re-created by the DaemonSet; the journal is
		// still there, and the new agent takes it up (its lock, its
		// entries) rather than starting a new one.
		if out, err := n.Kubectl(t, nil, "-n", "nodetune", "delete", "pod", pod.Name, "--wait=true", "--timeout=60s"); err != nil {
			t.Fatalf("kubectl delete pod: %v\n%s", err, out)
		}
		again := agentPod(t, n, "remediate")
		if again.Name == pod.Name {
			t.Fatalf("pod %s was not replaced", pod.Name)
		}
		after, err := os.ReadFile(journal)
		if err != nil || !bytes.HasPrefix(after, before) {
			t.Errorf("the journal did not survive the pod (%v):\nbefore:\n%s\nafter:\n%s", err, before, after)
		}
		waitFor(t, "the new agent's journal is usable", func() error {
			return metricIs(side, "http://"+n.IP()+":9848/metrics", "nodetune_journal_ok", "1")
		})
		t.Logf("pod %s replaced by %s; journal %d bytes before, %d after", pod.Name, again.Name, len(before), len(after))
		// The liveness probe starts 10 s after the container and runs every
		// 30 s: wait for the kubelet to count a successful one.
		waitFor(t, "a successful liveness probe", func() error {
			return probeSucceeded(n, again.Name, "Liveness")
		})
		agentPod(t, n, "remediate")
	}) {
		return
	}

	t.Run("helm", func(t *testing.T) { helmOnNode(t, n, vs["remediate"]) })
}

// helmOnNode replaces the kustomize install on n by the Helm chart,
// installed with helm install as docs/deploy.md says, and checks that its
// agent reports the tunnel's offload, switched off again, on the Node.
func helmOnNode(t *testing.T, n *nodetest.Node, kustomized *variant) {
	side := n.Side
	if out, err := n.Kubectl(t, forNode(t, kustomized), "delete", "-f", "-", "--wait=true", "--timeout=180s"); err != nil {
		t.Fatalf("kubectl delete the kustomize install: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"create", "namespace", "nodetune"},
		{"label", "namespace", "nodetune", "app.kubernetes.io/name=nodetune", "pod-security.kubernetes.io/enforce=privileged",
			"pod-security.kubernetes.io/warn=privileged", "pod-security.kubernetes.io/audit=privileged"},
	} {
		if out, err := n.Kubectl(t, nil, args...); err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
	}
	// The condition says False before the chart's agent runs, so that True
	// afterwards is that agent's report.
	ctx := context.Background()
	node, err := n.Cluster.Admin.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range node.Status.Conditions {
		if c.Type == kube.ConditionType {
			node.Status.Conditions[i].Status, node.Status.Conditions[i].Reason = corev1.ConditionFalse, "BeforeHelmInstall"
		}
	}
	if _, err := n.Cluster.Admin.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		t.Fatal(err)
	}
	repo, tag, _ := strings.Cut(testImage, ":")
	helmArgs := []string{"install", "nodetune", chartDir, "--namespace", "nodetune", "--kubeconfig", filepath.Join(n.Dir, "kubeconfig"),
		"--set", "image.repository=" + repo, "--set-string", "image.tag=" + tag}
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + side.NS, "--", kubetest.Tool(t, "helm")}, helmArgs...)...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	rollout(t, n)
	pod := agentPod(t, n, "observe")
	waitFor(t, "the chart's agent sets the Node condition", func() error {
		c := condition(t, n)
		if c == nil || c.Status != corev1.ConditionTrue || c.Reason != "TunnelTxChecksumOff" {
			return fmt.Errorf("condition %+v; want True, TunnelTxChecksumOff", c)
		}
		return nil
	})
	if offload(t, side) {
		t.Error("the chart's observe agent switched tx checksum offload on")
	}
	t.Logf("helm install: pod %s Ready and reporting", pod.Name)
}

// metricIs checks that the agent exports name with value.
func metricIs(side *testbed.Side, url, name, value string) error {
	body, err := fetch(side, url)
	if err != nil {
		return err
	}
	for line := range strings.SplitSeq(body, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			if f[1] == value {
				return nil
			}
			return fmt.Errorf("%s is %s; want %s", name, f[1], value)
		}
	}
	return fmt.Errorf("no %s in %s", name, url)
}

// offload reports whether tx checksum offload is on on side's tunnel.
func offload(t *testing.T, side *testbed.Side) bool {
	t.Helper()
	f, err := side.Features(side.Tunnel)
	if err != nil {
		t.Fatal(err)
	}
	return f["tx-checksum-ip-generic"]
}

// probeSucceeded checks the kubelet's count of probes of kind on pod:
// some succeeded and none failed.
func probeSucceeded(n *nodetest.Node, pod, kind string) error {
	m, err := n.KubeletMetrics("/metrics/probes")
	if err != nil {
		return err
	}
	counts := map[string]string{}
	for line := range strings.SplitSeq(m, "\n") {
		if strings.HasPrefix(line, "prober_probe_total{") && strings.Contains(line, `pod="`+pod+`"`) &&
			strings.Contains(line, `probe_type="`+kind+`"`) {
			f := strings.Fields(line)
			for _, r := range []string{"successful", "failed", "unknown"} {
				if strings.Contains(f[0], `result="`+r+`"`) {
					counts[r] = f[len(f)-1]
				}
			}
		}
	}
	if c := counts["failed"]; c != "" && c != "0" {
		return fmt.Errorf("%s %s probes of %s failed", c, kind, pod)
	}
	if c := counts["successful"]; c == "" || c == "0" {
		return fmt.Errorf("no successful %s probe of %s yet (%v)", kind, pod, counts)
	}
	return nil
}
