// Package nodetest runs a real Kubernetes node for tests: etcd and
// kube-apiserver (kube/kubetest), kube-controller-manager, kube-scheduler,
// containerd with runc, and a kubelet, all in side A of a VXLAN testbed,
// whose network namespace is the node's host network. The kubelet and
// containerd share a private mount namespace, so their mounts go with them,
// and in it the host's /var/lib/nodetune and /var/log are the node's own.
//
//	n := nodetest.Start(t, nodetest.Options{Images: []string{"bin/nodetune.oci.tar"}})
//	n.Apply(t, renderedManifests)
//
// The node needs root, Debian's containerd, runc and CNI plugins, buildah
// (for its pause image), and the Kubernetes programs that make deps builds
// into .cache/bin. It skips where they are missing, and fails under CI=true.
// It holds the machine-wide test lock (privtest.LockGlobal) while it runs,
// since the kubelet writes global sysctls; they, and the kubelet's cgroups,
// are restored when the test ends, and by the next run if this one is
// killed.
package nodetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/kube/kubetest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// Options describe the node.
type Options struct {
	// Images are OCI archives (hack/image.sh) imported into the node's
	// containerd before the kubelet starts; pods use them with
	// imagePullPolicy IfNotPresent or Never.
	Images []string
	// Name is the Node's name (default "nodetest").
	Name string
}

// Node is a running node.
type Node struct {
	// Name is the Node's name.
	Name string
	// Bed is the VXLAN testbed; its side A is the node's network.
	Bed *testbed.Bed
	// Side is Bed.A, the node's host network: its underlay address is
	// the node's IP.
	Side *testbed.Side
	// Cluster is the API server the node is registered with.
	Cluster *kubetest.Cluster
	// Dir holds the node's configuration, logs and state.
	Dir string
	// StateDir is what the node's pods see as the host's /var/lib/nodetune.
	StateDir string

	holder *exec.Cmd // keeps the node's mount namespace
	procs  []*process
}

// process is a program the node runs.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// tools are the programs the node runs, looked up as kubetest does.
var tools = []string{"kubelet", "kube-controller-manager", "kube-scheduler", "kubectl"}

// Start starts a node for t and stops it, restoring the host, when t ends.
func Start(t testing.TB, o Options) *Node {
	t.Helper()
	privtest.Root(t)
	for _, p := range []string{"containerd", "ctr", "runc", "nsenter", "unshare", "iptables", "buildah", "mount"} {
		privtest.Tool(t, p)
	}
	if _, err := os.Stat("/usr/lib/cni/loopback"); err != nil {
		privtest.Skip(t, "the CNI loopback plugin is not installed (containernetworking-plugins; make deps installs it)")
	}
	for _, p := range tools {
		kubetest.Tool(t, p)
	}
	if o.Name == "" {
		o.Name = "nodetest"
	}
	privtest.LockGlobal(t)
	// A killed run's leftovers go first; the lock says no node is running.
	if err := restoreHost(); err != nil {
		t.Fatalf("removing the leftovers of an earlier node: %v", err)
	}
	if _, err := testbed.Sweep("ntnode"); err != nil {
		t.Fatalf("removing an earlier node's namespaces: %v", err)
	}
	if err := saveSysctls(); err != nil {
		t.Fatalf("saving the global sysctls: %v", err)
	}
	record, err := os.ReadFile(sysctlsFile)
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: after the node and its testbed.
	t.Cleanup(func() {
		if err := restoreHost(); err != nil {
			t.Errorf("restoring the host after the node: %v", err)
		}
		if err := checkSysctls(string(record)); err != nil {
			t.Errorf("the host is not as before the node: %v", err)
		}
		if roots := cgroupRoots(); len(roots) != 0 {
			t.Errorf("the kubelet's cgroups are still there: %v", roots)
		}
	})

	dir, err := os.MkdirTemp("", workPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := &Node{Name: o.Name, Dir: dir, StateDir: filepath.Join(dir, "var-lib-nodetune")}
	n.Bed = testbedtest.New(t, testbed.Options{Prefix: "ntnode"})
	n.Side = n.Bed.A
	// Registered after the testbed's, so it runs before the testbed goes.
	t.Cleanup(func() {
		n.stop(t)
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("the node's files are kept in %s", dir)
		}
	})
	started := time.Now()
	if err := n.start(t, o); err != nil {
		t.Fatalf("starting the node: %v", err)
	}
	t.Logf("node %s (%s) Ready in %s", n.Name, n.IP(), time.Since(started).Round(100*time.Millisecond))
	return n
}

// IP is the node's IP, its pods' status.hostIP.
func (n *Node) IP() string { return n.Side.UnderlayIP.String() }

// netns is the path of the node's network namespace.
func (n *Node) netns() string { return "/run/netns/" + n.Side.NS }

// start brings the node up.
func (n *Node) start(t testing.TB, o Options) error {
	ctx := context.Background()
	c, err := kubetest.StartWith(ctx, kubetest.Options{NetNS: n.netns(), Dial: n.Side.DialContext, Address: n.IP()})
	if err != nil {
		return err
	}
	n.Cluster = c
	if err := n.serviceRoute(); err != nil {
		return err
	}
	admin, err := c.Kubeconfig(n.Dir, "", c.AdminToken)
	if err != nil {
		return err
	}
	ca := filepath.Join(n.Dir, "ca.crt")
	if err := os.WriteFile(ca, c.CAData, 0o644); err != nil {
		return err
	}
	if err := n.mountNamespace(); err != nil {
		return err
	}
	if err := n.run("kube-controller-manager", tool(t, "kube-controller-manager"), "--kubeconfig="+admin,
		"--leader-elect=false", "--secure-port=0", "--root-ca-file="+ca, "--use-service-account-credentials=false",
		"--controllers=*,-nodeipam,-nodelifecycle,-service-lb-controller,-cloud-node-lifecycle"); err != nil {
		return err
	}
	if err := n.run("kube-scheduler", tool(t, "kube-scheduler"), "--kubeconfig="+admin, "--leader-elect=false", "--secure-port=0"); err != nil {
		return err
	}
	if err := n.startContainerd(t, o.Images); err != nil {
		return err
	}
	if err := writeFiles(n.Dir, map[string]string{"kubelet/config.yaml": kubeletConfig(n.Dir)}); err != nil {
		return err
	}
	if err := makeCgroupRoot(); err != nil {
		return err
	}
	if err := n.run("kubelet", tool(t, "kubelet"), "--config="+filepath.Join(n.Dir, "kubelet/config.yaml"),
		"--kubeconfig="+admin, "--root-dir="+filepath.Join(n.Dir, "kubelet/root"),
		"--hostname-override="+n.Name, "--node-ip="+n.IP(), "--v=1"); err != nil {
		return err
	}
	return n.waitReady(ctx)
}

// serviceRoute sends the kubernetes Service's ClusterIP to the API server
// inside the node's namespace, as kube-proxy would (there is none): pods
// with in-cluster configuration dial 10.96.0.1:443.
func (n *Node) serviceRoute() error {
	u := strings.TrimPrefix(n.Cluster.URL, "https://")
	for _, args := range [][]string{
		{"ip", "route", "add", "10.96.0.0/24", "dev", "lo"},
		{"iptables", "-w", "-t", "nat", "-A", "OUTPUT", "-d", "10.96.0.1/32", "-p", "tcp", "--dport", "443", "-j", "DNAT", "--to-destination", u},
	} {
		if out, err := exec.Command("nsenter", append([]string{"--net=" + n.netns(), "--"}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// mountNamespace starts the process that holds the node's private mount
// namespace, in which /var/log is empty, /var/lib/nodetune is StateDir,
// and /sys is a sysfs of the node's network namespace (so its
// /sys/class/net lists the node's devices, as on a real node) with the
// host's cgroup filesystems moved over from the old one.
func (n *Node) mountNamespace() error {
	cgroups := filepath.Join(n.Dir, "cgroup")
	for _, d := range []string{n.StateDir, cgroups} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	script := fmt.Sprintf(`set -e
mount --rbind /sys/fs/cgroup %[2]q
mount -t sysfs node-sysfs /sys
mount --move %[2]q /sys/fs/cgroup
mount -t tmpfs -o mode=0755 node-var-log /var/log
mount -t tmpfs -o mode=0755 node-var-lib /var/lib
mkdir -p /var/lib/nodetune
mount --bind %[1]q /var/lib/nodetune
echo ready
exec sleep infinity`, n.StateDir, cgroups)
	n.holder = exec.Command("nsenter", "--net="+n.netns(), "--", "unshare", "--mount", "--propagation=private", "--", "sh", "-c", script)
	n.holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := n.holder.StdoutPipe()
	if err != nil {
		return err
	}
	n.holder.Stderr = os.Stderr
	if err := n.holder.Start(); err != nil {
		return fmt.Errorf("starting the mount namespace: %w", err)
	}
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil || string(buf) != "ready\n" {
		return fmt.Errorf("setting up the mount namespace: %q %v", buf, err)
	}
	return nil
}

// run starts a program in the node's network and mount namespaces, with
// its output in Dir/logs/NAME.log; it gets SIGKILL if the test dies.
func (n *Node) run(name, path string, args ...string) error {
	if err := os.MkdirAll(filepath.Join(n.Dir, "logs"), 0o755); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(n.Dir, "logs", name+".log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", append([]string{"--net=" + n.netns(),
		fmt.Sprintf("--mount=/proc/%d/ns/mnt", n.holder.Process.Pid), "--", path}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	n.procs = append(n.procs, p)
	return nil
}

// startContainerd starts containerd and imports the pause image and
// images into it.
func (n *Node) startContainerd(t testing.TB, images []string) error {
	if err := writeFiles(n.Dir, map[string]string{
		"containerd/config.toml":   containerdConfig(n.Dir),
		"cni/10-loopback.conflist": loopbackCNI,
	}); err != nil {
		return err
	}
	if err := n.run("containerd", "containerd", "--config="+filepath.Join(n.Dir, "containerd/config.toml")); err != nil {
		return err
	}
	if err := n.wait(30*time.Second, "containerd", func() error {
		_, err := n.ctr("version")
		return err
	}); err != nil {
		return err
	}
	pause, err := n.buildPause(t)
	if err != nil {
		return err
	}
	for _, img := range append([]string{pause}, images...) {
		if out, err := n.ctr("images", "import", img); err != nil {
			return fmt.Errorf("importing %s: %w: %s", img, err, out)
		}
	}
	return nil
}

// ctr runs ctr against the node's containerd, in the namespace the CRI
// uses.
func (n *Node) ctr(args ...string) (string, error) {
	out, err := exec.Command("ctr", append([]string{"--address=" + socket(n.Dir), "--namespace=k8s.io"}, args...)...).CombinedOutput()
	return string(out), err
}

// buildPause builds the pause program and its image, and returns the
// image's OCI archive.
func (n *Node) buildPause(t testing.TB) (string, error) {
	root, err := kubetest.RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(n.Dir, "pause/pause")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./internal/nodetest/pause")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the pause program: %w: %s", err, out)
	}
	archive := filepath.Join(n.Dir, "pause/pause.oci.tar")
	script := fmt.Sprintf(`set -e
c=$(buildah from scratch)
trap 'buildah rm "$c" >/dev/null 2>&1 || true' EXIT
buildah copy --quiet --chmod 0755 "$c" %q /pause >/dev/null
buildah config --entrypoint '["/pause"]' "$c"
buildah commit --quiet "$c" oci-archive:%s:%s >/dev/null`, bin, archive, pauseImage)
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the pause image: %w: %s", err, out)
	}
	return archive, nil
}

// waitReady waits until the Node is Ready.
func (n *Node) waitReady(ctx context.Context) error {
	return n.wait(3*time.Minute, "the Node to be Ready", func() error {
		node, err := n.Cluster.Admin.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("Ready is %s: %s", c.Status, c.Message)
			}
		}
		return errors.New("no Ready condition yet")
	})
}

// wait calls fn until it succeeds, a program of the node exits, or
// timeout passes.
func (n *Node) wait(timeout time.Duration, what string, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		for _, p := range n.procs {
			select {
			case <-p.done:
				return fmt.Errorf("waiting for %s: %s exited; its log ends:\n%s", what, p.name, n.LogTail(p.name, 20))
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// stop stops the kubelet, the pods and containerd, then the other
// programs, and checks that none of their processes is left.
func (n *Node) stop(t testing.TB) {
	t.Helper()
	if t.Failed() {
		for _, p := range n.procs {
			t.Logf("%s's log ends:\n%s", p.name, n.LogTail(p.name, 15))
		}
	}
	stopProc := func(p *process) {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	byName := map[string]*process{}
	for _, p := range n.procs {
		byName[p.name] = p
	}
	if p := byName["kubelet"]; p != nil {
		stopProc(p)
	}
	if byName["containerd"] != nil {
		if ids, err := n.ctr("tasks", "ls", "--quiet"); err == nil {
			for _, id := range strings.Fields(ids) {
				_, _ = n.ctr("tasks", "kill", "--signal=SIGKILL", id)
			}
		}
	}
	for i := len(n.procs) - 1; i >= 0; i-- {
		if n.procs[i].name != "kubelet" {
			stopProc(n.procs[i])
		}
	}
	n.procs = nil
	if n.Cluster != nil {
		n.Cluster.Stop()
	}
	// containerd's shims and the pods' processes outlive containerd.
	if err := errors.Join(killLeftovers(), removeCgroups()); err != nil {
		t.Errorf("stopping the node: %v", err)
	}
	if n.holder != nil {
		_ = n.holder.Process.Kill()
		_ = n.holder.Wait()
	}
	if pids, err := leftoverProcesses(); err != nil || len(pids) > 0 {
		t.Errorf("processes of the node are left: %v (%v)", pids, err)
	}
}
