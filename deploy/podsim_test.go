package deploy_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/kube/kubetest"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// The tests in this file run nodetune the way the rendered DaemonSet runs
// it, without a container runtime: in a VXLAN testbed namespace (the host
// network the pod shares), in a mount namespace of its own with every
// volume of the DaemonSet bind-mounted where the container would see it,
// read-only or writable as the manifest says and parents first as runtimes
// mount them, and as the manifest's user with exactly its capabilities and
// no_new_privs. They prove what docs/deploy.md claims: observe mode needs
// neither root nor any capability, remediate mode needs only NET_ADMIN,
// and the nested writable mounts are the only writable parts of /proc and
// /sys.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// nodetuneBinary builds nodetune once for the test binary.
func nodetuneBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		root, err := kubetest.RepoRoot()
		if err != nil {
			binErr = err
			return
		}
		dir, err := os.MkdirTemp("", "nodetune-deploy-test-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "nodetune")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/nodetune")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// pod is a DaemonSet's container, emulated.
type pod struct {
	root  string // where the container's / would be
	ns    string // the network namespace
	mount []string
	uid   int64
	caps  []string
	args  []string
}

// emulate lays out ds's container under a new directory, with host paths
// replaced as hostPaths says (the state directory must not be the real
// /var/lib/nodetune), for a process in network namespace ns.
func emulate(t *testing.T, ds *appsv1.DaemonSet, ns string, hostPaths map[string]string) *pod {
	t.Helper()
	spec := ds.Spec.Template.Spec
	c := spec.Containers[0]
	// Traversable by the manifest's user, as a container's root is
	// (t.TempDir is root's alone).
	root, err := os.MkdirTemp("", "nodetune-pod-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &pod{root: root, ns: ns}
	volumes := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			volumes[v.Name] = v.HostPath.Path
			if sub, ok := hostPaths[v.HostPath.Path]; ok {
				volumes[v.Name] = sub
			}
		}
	}
	mounts := slices.Clone(c.VolumeMounts)
	// Parents before children, as container runtimes mount them.
	slices.SortStableFunc(mounts, func(a, b corev1.VolumeMount) int {
		return strings.Count(filepath.Clean(a.MountPath), "/") - strings.Count(filepath.Clean(b.MountPath), "/")
	})
	for _, m := range mounts {
		src, ok := volumes[m.Name]
		if !ok {
			t.Fatalf("mount %s: volume %s is not a hostPath", m.MountPath, m.Name)
		}
		dst := p.root + m.MountPath
		p.mount = append(p.mount, fmt.Sprintf("mkdir -p %q", dst), fmt.Sprintf("mount --rbind %q %q", src, dst))
		if m.ReadOnly {
			p.mount = append(p.mount, fmt.Sprintf("mount -o remount,bind,ro %q", dst))
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			p.uid = *sc.RunAsUser
		}
		if sc.Capabilities != nil {
			for _, c := range sc.Capabilities.Add {
				p.caps = append(p.caps, strings.ToLower(string(c)))
			}
		}
	}
	// The container's paths, seen from outside its mount layout, with
	// $(VAR) references to its environment expanded as the kubelet does.
	env := containerEnv(t, c)
	for _, a := range c.Args {
		a = envRef.ReplaceAllStringFunc(a, func(ref string) string {
			if v, ok := env[ref[2:len(ref)-1]]; ok {
				return v
			}
			return ref
		})
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(v, "/") {
			a = k + "=" + p.root + v
		}
		p.args = append(p.args, a)
	}
	return p
}

// envRef is a $(VAR) reference in a container's arguments.
var envRef = regexp.MustCompile(`\$\([A-Za-z_][A-Za-z0-9_]*\)`)

// downward are the downward API's values in the emulation: the testbed
// namespace's loopback stands for the node's IP.
var downward = map[string]string{"spec.nodeName": "podsim-node", "status.hostIP": "127.0.0.1"}

// containerEnv is c's environment, its downward API fields resolved.
func containerEnv(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			v, ok := downward[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				t.Fatalf("env %s: the emulation has no value for field %s", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			env[e.Name] = v
		default:
			t.Fatalf("env %s: only values and downward API fields are emulated", e.Name)
		}
	}
	return env
}

// command returns a command that runs argv inside the emulated pod.
func (p *pod) command(argv ...string) *exec.Cmd {
	bounding := "-all"
	for _, c := range p.caps {
		bounding += ",+" + c
	}
	script := "set -e\nmount --make-rprivate /\n" + strings.Join(p.mount, "\n") +
		fmt.Sprintf("\nexec setpriv --reuid=%[1]d --regid=%[1]d", p.uid) + " --clear-groups --nnp --inh-caps=-all --ambient-caps=-all --bounding-set=" + bounding + " -- \"$@\"\n"
	args := append([]string{"netns", "exec", p.ns, "unshare", "--mount", "--", "sh", "-c", script, "sh"}, argv...)
	return exec.Command("ip", args...)
}

// sh runs a shell command in the pod and returns its error and output.
func (p *pod) sh(cmd string) (string, error) {
	out, err := p.command("sh", "-c", cmd).CombinedOutput()
	return string(out), err
}

// start starts nodetune with the manifest's arguments and extra ones, and
// kills it when t ends.
func (p *pod) start(t *testing.T, bin string, extra ...string) {
	t.Helper()
	cmd := p.command(append(append([]string{bin}, p.args...), extra...)...)
	out := &strings.Builder{}
	var mu sync.Mutex
	cmd.Stdout = writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) })
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("nodetune's output:\n%s", out.String())
			mu.Unlock()
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// podTools checks for the programs the emulation uses.
func podTools(t *testing.T) {
	t.Helper()
	privtest.Root(t)
	for _, tool := range []string{"ip", "unshare", "setpriv", "mount"} {
		privtest.Tool(t, tool)
	}
}

// findings asks the nodetune in side's namespace for its findings.
func findings(t *testing.T, side *testbed.Side, addr string) ([]rules.Finding, []rules.Unchecked, error) {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		Dial: func(network, a string) (conn net.Conn, err error) {
			err = side.Do(func() error { conn, err = net.Dial(network, a); return err })
			return conn, err
		},
	}}
	resp, err := client.Get("http://" + addr + "/findings")
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET /findings: %s", resp.Status)
	}
	var doc struct {
		Findings  []rules.Finding   `json:"findings"`
		Unchecked []rules.Unchecked `json:"unchecked"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, nil, err
	}
	return doc.Findings, doc.Unchecked, nil
}

func waitFor(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func offload(t *testing.T, side *testbed.Side) bool {
	t.Helper()
	f, err := side.Features(side.Tunnel)
	if err != nil {
		t.Fatal(err)
	}
	return f["tx-checksum-ip-generic"]
}

// TestPodObserveNeedsNoCapability runs the observe DaemonSet's nodetune
// as nobody, with no capability at all and read-only host mounts on a tunnel with
// offload off: it must see the finding, leave the device alone, and have
// nothing it could not check for lack of permission.
func TestPodObserveNeedsNoCapability(t *testing.T) {
	podTools(t)
	ds := render(t)["observe"].daemonSet(t)
	bin := nodetuneBinary(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntpo"})
	side := bed.A
	if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		t.Fatal(err)
	}
	p := emulate(t, ds, side.NS, map[string]string{"/var/lib/nodetune": t.TempDir()})
	if len(p.caps) != 0 {
		t.Fatalf("the observe DaemonSet adds capabilities %v", p.caps)
	}
	// The manifest's own listen address: the node's IP (here the
	// namespace's loopback) on port 9848.
	const addr = "127.0.0.1:9848"
	p.start(t, bin, "--probe.interval=1s", "--kube-proxy.url=")
	waitFor(t, "the offload finding", func() error {
		fs, unchecked, err := findings(t, side, addr)
		if err != nil {
			return err
		}
		for _, u := range unchecked {
			if strings.Contains(strings.ToLower(u.Reason), "permission") {
				t.Errorf("without capabilities nodetune could not check %s on %s: %s", u.Rule, u.Subject, u.Reason)
			}
		}
		if !slices.ContainsFunc(fs, func(f rules.Finding) bool {
			return f.Rule == rules.TunnelTxChecksumOff && f.Subject == side.Tunnel
		}) {
			return fmt.Errorf("no %s finding for %s yet", rules.TunnelTxChecksumOff, side.Tunnel)
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond)
	if offload(t, side) {
		t.Error("observe mode switched tx checksum offload on")
	}
}

// TestPodRemediateNeedsOnlyNetAdmin runs the remediate DaemonSet's
// nodetune with NET_ADMIN alone: it must fix the tunnel. It then checks the
// mount layout from a shell with the same privileges: net sysctls and RPS
// masks are writable through the nested mounts, the rest of /proc and /sys
// is not, and without NET_ADMIN (the observe pod) neither is.
func TestPodRemediateNeedsOnlyNetAdmin(t *testing.T) {
	podTools(t)
	vs := render(t)
	bin := nodetuneBinary(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntpr"})
	side := bed.A
	if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	rem := emulate(t, vs["remediate"].daemonSet(t), side.NS, map[string]string{"/var/lib/nodetune": state})
	if !slices.Equal(rem.caps, []string{"net_admin"}) {
		t.Fatalf("the remediate DaemonSet adds capabilities %v; want net_admin alone", rem.caps)
	}
	rem.start(t, bin, "--probe.interval=1s", "--kube-proxy.url=")
	waitFor(t, "nodetune fixes the tunnel", func() error {
		if !offload(t, side) {
			return fmt.Errorf("tx checksum offload still off on %s", side.Tunnel)
		}
		return nil
	})
	if entries, err := os.ReadDir(state); err != nil || len(entries) == 0 {
		t.Errorf("nothing journaled in the state directory (%v)", err)
	}

	obs := emulate(t, vs["observe"].daemonSet(t), side.NS, map[string]string{"/var/lib/nodetune": t.TempDir()})
	// The emulation really holds the capabilities it claims: CAP_NET_ADMIN
	// is bit 12.
	for _, c := range []struct {
		pod  *pod
		want string
	}{{rem, "0000000000001000"}, {obs, "0000000000000000"}} {
		out, err := c.pod.sh("grep CapEff /proc/self/status")
		if err != nil || strings.Fields(out)[1] != c.want {
			t.Fatalf("effective capabilities in the pod: %q (%v); want %s", out, err, c.want)
		}
	}
	rps := fmt.Sprintf("/host/sys/class/net/%s/queues/rx-0/rps_cpus", side.Underlay)
	// Each write puts back the value it read, so a check that wrongly
	// succeeds changes nothing.
	rewrite := func(path string) string { return fmt.Sprintf("v=$(cat %[1]s) && echo \"$v\" > %[1]s", path) }
	for _, c := range []struct {
		pod      *pod
		name     string
		path     string
		writable bool
	}{
		{rem, "remediate", "/host/proc/sys/net/ipv4/conf/all/forwarding", true},
		{rem, "remediate", rps, true},
		{rem, "remediate", "/host/proc/sys/kernel/hostname", false},
		{rem, "remediate", "/host/proc/sys/vm/swappiness", false},
		{rem, "remediate", "/host/root/etc/hostname", false},
		{obs, "observe", "/host/proc/sys/net/ipv4/conf/all/forwarding", false},
		{obs, "observe", rps, false},
	} {
		out, err := c.pod.sh(rewrite(c.pod.root + c.path))
		if (err == nil) != c.writable {
			t.Errorf("%s pod writing %s: err = %v (%s); want writable %v", c.name, c.path, err, strings.TrimSpace(out), c.writable)
		}
	}
}
