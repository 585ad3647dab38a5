package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/kube"
	"github.com/nodetune/nodetune/kube/kubetest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// TestStartKubeOutsideCluster checks that serve reports to Kubernetes only
// when asked to: not on a plain host, not in a pod that is not the
// DaemonSet's (no node name), and that a --kubeconfig it cannot read is an
// error rather than silence.
func TestStartKubeOutsideCluster(t *testing.T) {
	g := &globals{log: slog.New(slog.DiscardHandler)}
	t.Setenv("NODE_NAME", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if h, err := startKube(g, kubeFlags{}, "observe", &daemon.Options{}); h != nil || err != nil {
		t.Errorf("on a plain host: startKube = %v, %v; want nothing", h, err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	var logs strings.Builder
	g.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if h, err := startKube(g, kubeFlags{}, "observe", &daemon.Options{}); h != nil || err != nil {
		t.Errorf("in a pod without a node name: startKube = %v, %v; want nothing", h, err)
	}
	// It must not even look for the in-cluster configuration.
	if !strings.Contains(logs.String(), "no node name") || strings.Contains(logs.String(), "cannot report") {
		t.Errorf("in a pod without a node name, serve logged:\n%s", logs.String())
	}
	missing := filepath.Join(t.TempDir(), "kubeconfig")
	if h, err := startKube(g, kubeFlags{kubeconfig: missing}, "observe", &daemon.Options{}); h != nil || err == nil {
		t.Errorf("with an unreadable --kubeconfig: startKube = %v, %v; want an error", h, err)
	}
}

// TestServeKube runs nodetune serve --kubeconfig in a VXLAN testbed
// namespace against a real API server, as the DaemonSet's service account
// with the shipped RBAC, on a Node the test registers:
//   - observe mode with tx checksum offload off sets the Node's
//     NetworkPerformanceDegraded condition to True/TunnelTxChecksumOff;
//   - remediate mode fixes the device and records RemediationApplied and
//     RemediationVerified events, and the condition clears;
//   - the nodetune.io/mode=observe label pauses remediation on the node;
//   - SIGTERM with --rollback-on-exit records RemediationRolledBack.
func TestServeKube(t *testing.T) {
	privtest.Root(t)
	bin := nodetuneBinary(t)
	c := kubetest.ForTest(t)
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Kubectl(t, root, "apply", "--server-side", "-k", "deploy/overlays/remediate"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	ctx := context.Background()
	token, err := c.Token(ctx, "nodetune", "nodetune")
	if err != nil {
		t.Fatal(err)
	}
	const node = "testbed-node-a"
	c.CreateNode(t, node)

	bed := testbedtest.New(t, testbed.Options{Prefix: "ntk"})
	side := bed.A
	// The API server listens on the host's loopback; serve reaches it
	// through a listener the test opens on the namespace's loopback.
	var l net.Listener
	if err := side.Do(func() (err error) { l, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := c.Kubeconfig(t.TempDir(), c.Proxy(t, l), token)
	if err != nil {
		t.Fatal(err)
	}
	serveArgs := func(mode string, extra ...string) []string {
		return append([]string{bin, "serve", "--mode=" + mode, "--kubeconfig=" + kubeconfig, "--kube.node-name=" + node,
			"--web.listen-address=127.0.0.1:9751", "--probe.interval=1s", "--probe.window=200ms",
			"--kube-proxy.url=", "--log.level=debug"}, extra...)
	}
	setOffload := func(on bool) {
		t.Helper()
		if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": on}); err != nil {
			t.Fatal(err)
		}
	}
	condition := func(status corev1.ConditionStatus, reason string) func() error {
		return func() error {
			n, err := c.Admin.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, cond := range n.Status.Conditions {
				if cond.Type == kube.ConditionType {
					if cond.Status != status || cond.Reason != reason {
						return fmt.Errorf("condition is %s/%s (%q); want %s/%s", cond.Status, cond.Reason, cond.Message, status, reason)
					}
					return nil
				}
			}
			return fmt.Errorf("no %s condition on the Node yet", kube.ConditionType)
		}
	}

	// Observe: the condition says what is wrong, and nothing is changed.
	setOffload(false)
	observe := startIn(t, side.NS, serveArgs("observe")...)
	eventually(t, 20*time.Second, "the condition is set", condition(corev1.ConditionTrue, "TunnelTxChecksumOff"))
	if f, err := side.Features(side.Tunnel); err != nil || f["tx-checksum-ip-generic"] {
		t.Fatalf("observe mode changed the device (tx checksum now %v, err %v)", f["tx-checksum-ip-generic"], err)
	}
	if err := observe.stop(t); err != nil {
		t.Fatalf("serve --mode=observe did not exit cleanly: %v", err)
	}

	// Remediate: fixed, with events, and the condition clears.
	stateDir := filepath.Join(t.TempDir(), "state")
	serve := startIn(t, side.NS, serveArgs("remediate", "--rollback-on-exit", "--state-dir="+stateDir)...)
	waitFeature(t, side, side.Tunnel, true, 20*time.Second)
	eventually(t, 20*time.Second, "the remediation events are recorded",
		nodeEvents(ctx, c, node, "RemediationApplied", "RemediationVerified"))
	eventually(t, 20*time.Second, "the condition no longer blames offload", func() error {
		if condition(corev1.ConditionTrue, "TunnelTxChecksumOff")() == nil {
			return fmt.Errorf("still True/TunnelTxChecksumOff")
		}
		return nil
	})

	// The label pauses remediation on this node: offload stays off.
	label := func(value string) {
		t.Helper()
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, kube.ModeLabel, value)
		if _, err := c.Admin.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	label(`"observe"`)
	time.Sleep(500 * time.Millisecond) // the agent's watch sees the label
	setOffload(false)
	eventually(t, 20*time.Second, "the condition is set again", condition(corev1.ConditionTrue, "TunnelTxChecksumOff"))
	time.Sleep(2 * time.Second) // two probe cycles
	if f, err := side.Features(side.Tunnel); err != nil || f["tx-checksum-ip-generic"] {
		t.Fatalf("remediation went on under %s=observe (tx checksum now %v, err %v)", kube.ModeLabel, f["tx-checksum-ip-generic"], err)
	}
	label("null") // removes it
	waitFeature(t, side, side.Tunnel, true, 20*time.Second)

	// SIGTERM with --rollback-on-exit: the original value (off) is back,
	// and the rollback is on record.
	if err := serve.stop(t); err != nil {
		t.Fatalf("serve --mode=remediate did not exit cleanly: %v", err)
	}
	if f, err := side.Features(side.Tunnel); err != nil || f["tx-checksum-ip-generic"] {
		t.Errorf("--rollback-on-exit left tx checksum offload on (err %v)", err)
	}
	eventually(t, 10*time.Second, "the rollback event is recorded", nodeEvents(ctx, c, node, "RemediationRolledBack"))
}

// nodeEvents checks that the Node has events with each of reasons.
func nodeEvents(ctx context.Context, c *kubetest.Cluster, node string, reasons ...string) func() error {
	return func() error {
		l, err := c.Admin.EventsV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=" + node})
		if err != nil {
			return err
		}
		var have []string
		for _, e := range l.Items {
			have = append(have, e.Reason)
		}
		for _, r := range reasons {
			if !slices.Contains(have, r) {
				return fmt.Errorf("no %s event; the Node has [%s]", r, strings.Join(have, " "))
			}
		}
		return nil
	}
}
