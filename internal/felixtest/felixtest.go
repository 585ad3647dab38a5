// Package felixtest runs a real Calico Felix for tests, against the
// kubetest API server, inside a testbed network namespace: the Felix that
// hack/felix/build.sh builds from the Go module proxy into .cache/bin as
// calico-node, with Calico's CRDs (calico-crds.yaml beside it).
//
//	c := kubetest.Get(t)
//	bed := testbedtest.New(t, testbed.Options{})
//	felixtest.Prepare(t, c, "ChecksumOffloadBroken=true")
//	f := felixtest.Start(t, felixtest.Options{Cluster: c, Side: bed.A, Node: "node-a"})
//	// Felix now runs in bed.A's namespace and has created vxlan.calico there.
//
// Felix runs in Kubernetes-datastore mode with the cluster's admin token,
// reaching the API server through a proxy that listens on 127.0.0.1 inside
// the namespace. It runs under a restart loop, as calico-node's supervisor
// runs it: Felix exits (with code 129) to restart itself when a setting
// such as featureDetectOverride changes. It programs nftables and routes
// inside its namespace only. Start stops it when the test ends, killing
// only the processes it started.
//
// Where the binary or the CRDs are missing the test skips, except under
// CI=true (or NODETUNE_PRIVILEGED_TESTS=1), where it fails.
package felixtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/kube/kubetest"
	"github.com/nodetune/nodetune/testbed"
)

// TunnelDevice is the VXLAN device Felix creates.
const TunnelDevice = "vxlan.calico"

// HealthAddr is where Felix serves /readiness and /liveness, inside its
// namespace.
const HealthAddr = "127.0.0.1:9099"

// RestartCode is the exit code with which Felix asks to be restarted.
const RestartCode = 129

// readyTimeout bounds how long Felix may take to become ready; it is
// ready within about a second on an idle machine.
const readyTimeout = 60 * time.Second

// Binary returns the path of the Felix binary (.cache/bin/calico-node,
// or calico-node in PATH), skipping t where it is missing, or failing it
// where privileged tests are mandatory.
func Binary(t testing.TB) string {
	t.Helper()
	return kubetest.Tool(t, "calico-node")
}

// CRDs returns the path of Calico's CRD manifest (.cache/bin/calico-crds.yaml),
// skipping or failing t as Binary does.
func CRDs(t testing.TB) string {
	t.Helper()
	return kubetest.Tool(t, "calico-crds.yaml")
}

// V3CRD serves felixconfigurations in projectcalico.org/v3 as a CRD: the
// paths and apiVersion the Calico API server serves, and what Calico's
// native v3 CRD mode (the default for new installs from Calico 3.32)
// installs instead of it, for tests of the v3 path on a real API server.
const V3CRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: felixconfigurations.projectcalico.org}
spec:
  group: projectcalico.org
  scope: Cluster
  names: {kind: FelixConfiguration, listKind: FelixConfigurationList, plural: felixconfigurations, singular: felixconfiguration}
  versions:
    - name: v3
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

var installed sync.Map // *kubetest.Cluster -> bool

// InstallCRDs creates Calico's CRDs (crd.projectcalico.org/v1) in c and
// waits until they are served. It is idempotent, and does the work once
// per cluster in a test binary.
func InstallCRDs(t testing.TB, c *kubetest.Cluster) {
	t.Helper()
	if _, ok := installed.Load(c); ok {
		return
	}
	crds := CRDs(t)
	// Server-side apply: Calico's CRDs are too large for the
	// last-applied annotation of a client-side apply.
	if out, err := c.Kubectl(t, c.Dir, "apply", "--server-side", "--force-conflicts", "-f", crds); err != nil {
		t.Fatalf("creating Calico's CRDs: %v\n%s", err, out)
	}
	if out, err := c.Kubectl(t, c.Dir, "wait", "--for", "condition=established", "--timeout=60s",
		"crd/felixconfigurations.crd.projectcalico.org", "crd/ippools.crd.projectcalico.org",
		"crd/clusterinformations.crd.projectcalico.org"); err != nil {
		t.Fatalf("waiting for Calico's CRDs: %v\n%s", err, out)
	}
	installed.Store(c, true)
}

// Prepare installs the CRDs and the cluster-wide objects Felix needs: the
// ClusterInformation default (datastore ready), an IPPool in VXLAN mode,
// and the FelixConfiguration default with VXLAN enabled and
// featureDetectOverride set to override (left out when empty). It
// replaces default's spec when it exists.
func Prepare(t testing.TB, c *kubetest.Cluster, override string) {
	t.Helper()
	InstallCRDs(t, c)
	spec := `{vxlanEnabled: true}`
	if override != "" {
		spec = fmt.Sprintf(`{vxlanEnabled: true, featureDetectOverride: %q}`, override)
	}
	Apply(t, c, `apiVersion: crd.projectcalico.org/v1
kind: ClusterInformation
metadata: {name: default}
spec: {datastoreReady: true, clusterGUID: 0123456789abcdef0123456789abcdef, calicoVersion: v3.28, clusterType: "k8s,kdd"}
---
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 192.168.0.0/16, blockSize: 26, vxlanMode: Always, ipipMode: Never, natOutgoing: true, nodeSelector: all()}
---
apiVersion: crd.projectcalico.org/v1
kind: FelixConfiguration
metadata: {name: default}
spec: `+spec+"\n")
}

// Apply applies YAML objects to c as the admin (kubectl apply, with
// replace semantics for what the YAML sets).
func Apply(t testing.TB, c *kubetest.Cluster, yaml string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "objects.yaml")
	if err := os.WriteFile(f, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Kubectl(t, c.Dir, "apply", "--server-side", "--force-conflicts", "--field-manager=felixtest", "-f", f); err != nil {
		t.Fatalf("applying objects: %v\n%s\n%s", err, out, yaml)
	}
}

// Options say where Felix runs.
type Options struct {
	// Cluster is the API server Felix reads its configuration from.
	Cluster *kubetest.Cluster
	// Side is the testbed namespace Felix runs in, as the node's host
	// network: Felix picks the device that holds Side.UnderlayIP as
	// vxlan.calico's parent.
	Side *testbed.Side
	// Node is the Node's name (Felix's hostname), registered with the
	// annotations that tell Felix its address and tunnel address.
	Node string
	// TunnelIP is this node's address on vxlan.calico, inside the IPPool
	// Prepare creates; the default is 192.168.10.N, N the last byte of
	// Side.UnderlayIP, so the two sides of a testbed differ.
	TunnelIP string
	// Env adds FELIX_* settings to Felix's environment.
	Env []string
}

// Felix is a running Felix and its restart loop.
type Felix struct {
	// Node is the node's name; the per-node FelixConfiguration is
	// node.<Node>.
	Node string
	// Side is the namespace Felix runs in.
	Side *testbed.Side
	// Dir holds Felix's kubeconfig and log.
	Dir string
	// VarLib is what Felix sees as /var/lib (it writes calico/mtu there).
	VarLib string

	bin, kubeconfig string
	env             []string
	log             string // Dir/felix.log

	mu       sync.Mutex
	starts   int
	exits    []int
	cur      *exec.Cmd
	stopping bool
	done     chan struct{}
	http     *http.Client
}

// Start registers the Node, then runs Felix for it in o.Side's namespace
// under a restart loop, and waits until Felix is ready. Felix is stopped
// when t ends. Prepare must have been called for the cluster.
func Start(t testing.TB, o Options) *Felix {
	t.Helper()
	privtest.Root(t)
	bin := Binary(t)
	privtest.Tool(t, "ipset") // Felix runs it at start
	privtest.Tool(t, "ip")
	privtest.Tool(t, "unshare")
	if o.Cluster == nil || o.Side == nil || o.Node == "" {
		t.Fatal("felixtest: Options needs a Cluster, a Side and a Node")
	}
	if o.TunnelIP == "" {
		o.TunnelIP = fmt.Sprintf("192.168.10.%d", o.Side.UnderlayIP.As4()[3])
	}
	addr := o.Side.UnderlayIP.String() + "/24"
	Apply(t, o.Cluster, fmt.Sprintf(`apiVersion: v1
kind: Node
metadata:
  name: %s
  annotations: {projectcalico.org/IPv4Address: %q, projectcalico.org/IPv4VXLANTunnelAddr: %q}
`, o.Node, addr, o.TunnelIP))
	t.Cleanup(func() {
		if out, err := o.Cluster.Kubectl(t, o.Cluster.Dir, "delete", "node", o.Node, "--ignore-not-found"); err != nil {
			t.Errorf("deleting Node %s: %v\n%s", o.Node, err, out)
		}
	})

	// The API server listens on the caller's loopback; Felix, in its own
	// namespace, reaches it through a proxy listening on that namespace's.
	var l net.Listener
	if err := o.Side.Do(func() (err error) {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatalf("listening in %s for the API server proxy: %v", o.Side.NS, err)
	}
	server := o.Cluster.Proxy(t, l)
	dir := t.TempDir()
	kubeconfig, err := o.Cluster.Kubeconfig(dir, server, o.Cluster.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	varLib := filepath.Join(dir, "var-lib")
	if err := os.Mkdir(varLib, 0o755); err != nil {
		t.Fatal(err)
	}
	f := &Felix{
		Node: o.Node, Side: o.Side, Dir: dir, VarLib: varLib, bin: bin, kubeconfig: kubeconfig,
		log:  filepath.Join(dir, "felix.log"),
		done: make(chan struct{}),
		http: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: o.Side.DialContext, DisableKeepAlives: true}},
	}
	f.env = append([]string{
		"FELIX_DATASTORETYPE=kubernetes", "KUBECONFIG=" + kubeconfig, "FELIX_FELIXHOSTNAME=" + o.Node,
		"FELIX_LOGSEVERITYSCREEN=info", "FELIX_LOGFILEPATH=none", "FELIX_LOGSEVERITYSYS=none",
		"FELIX_HEALTHENABLED=true", "FELIX_HEALTHHOST=127.0.0.1", "FELIX_USAGEREPORTINGENABLED=false",
		"FELIX_IPV6SUPPORT=false", "FELIX_DEFAULTENDPOINTTOHOSTACTION=ACCEPT", "FELIX_IPTABLESBACKEND=nft",
		"PATH=" + os.Getenv("PATH"),
	}, o.Env...)
	if err := f.launch(); err != nil {
		t.Fatal(err)
	}
	go f.loop()
	t.Cleanup(func() {
		f.stop()
		if t.Failed() {
			t.Logf("Felix's log ends:\n%s", lastLines(f.Log(), 40))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := f.WaitReady(ctx); err != nil {
		t.Fatalf("Felix for %s: %v; its log ends:\n%s", o.Node, err, lastLines(f.Log(), 40))
	}
	return f
}

// launchScript runs Felix ($3) in network namespace $2 with $1 mounted
// over /var/lib, in a mount namespace of its own: Felix writes
// /var/lib/calico/mtu, a path it does not let configure, and a test must
// leave the host's files alone.
const launchScript = `mount --bind "$1" /var/lib && exec ip netns exec "$2" "$3"`

// launch starts one Felix process in the namespace. ip netns exec gives it
// the namespace's view of /sys too, as a pod on the node's host network
// has; the process is its own process group, so stopping it reaches the
// programs it runs (iptables-nft-restore, ipset) and nothing else.
func (f *Felix) launch() error {
	logf, err := os.OpenFile(f.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("opening Felix's log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", launchScript, "sh", f.VarLib, f.Side.NS, f.bin)
	cmd.Env = f.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting Felix in %s: %w", f.Side.NS, err)
	}
	f.mu.Lock()
	f.cur = cmd
	f.starts++
	f.mu.Unlock()
	return nil
}

// loop waits for each Felix process and starts the next one, as
// calico-node's supervisor does, until stop.
func (f *Felix) loop() {
	defer close(f.done)
	for {
		f.mu.Lock()
		cmd := f.cur
		f.mu.Unlock()
		err := cmd.Wait()
		code := cmd.ProcessState.ExitCode()
		f.note(fmt.Sprintf("=== felixtest: Felix exited with code %d (%v)\n", code, err))
		f.mu.Lock()
		f.exits = append(f.exits, code)
		stopping := f.stopping
		f.mu.Unlock()
		if stopping {
			return
		}
		time.Sleep(500 * time.Millisecond)
		f.mu.Lock()
		stopping = f.stopping
		f.mu.Unlock()
		if stopping {
			return
		}
		if err := f.launch(); err != nil {
			f.note("=== felixtest: " + err.Error() + "\n")
			return
		}
	}
}

// note appends a line of the harness's own to Felix's log.
func (f *Felix) note(s string) {
	if lf, err := os.OpenFile(f.log, os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
		_, _ = lf.WriteString(s)
		lf.Close()
	}
}

// stop ends the loop and the current Felix: SIGTERM to its process group,
// SIGKILL after 10 s.
func (f *Felix) stop() {
	f.mu.Lock()
	f.stopping = true
	cmd := f.cur
	f.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	select {
	case <-f.done:
		return
	case <-time.After(10 * time.Second):
	}
	f.mu.Lock()
	cmd = f.cur
	f.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	<-f.done
}

// Restarts is how often the loop started Felix again after it exited.
func (f *Felix) Restarts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts - 1
}

// ExitCodes are the exit codes of the Felix processes that ended, in order.
func (f *Felix) ExitCodes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.exits...)
}

// PID is the current Felix process's id.
func (f *Felix) PID() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur == nil || f.cur.Process == nil {
		return 0
	}
	return f.cur.Process.Pid
}

// Log returns Felix's output so far, of every run, with a line of the
// harness's at each exit.
func (f *Felix) Log() string {
	b, err := os.ReadFile(f.log)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Ready reports whether Felix answers 200 on /readiness.
func (f *Felix) Ready(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+HealthAddr+"/readiness", nil)
	if err != nil {
		return false
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitReady waits until Felix is ready, or ctx ends.
func (f *Felix) WaitReady(ctx context.Context) error {
	for {
		if f.Ready(ctx) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("felix not ready on %s in %s: %w", HealthAddr, f.Side.NS, ctx.Err())
		case <-f.done:
			return errors.New("felix's restart loop ended")
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// WaitRestarts waits until Felix has restarted at least n times in all and
// is ready again, or ctx ends.
func (f *Felix) WaitRestarts(ctx context.Context, n int) error {
	for f.Restarts() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("felix restarted %d times, waiting for %d: %w", f.Restarts(), n, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	return f.WaitReady(ctx)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
