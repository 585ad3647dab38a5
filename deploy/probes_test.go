package deploy_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"

	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// TestPodProbesWithBasicAuth runs the observe DaemonSet's nodetune with
// basic auth on its metrics port (--web.config.file, as docs/deploy.md
// suggests) and makes the manifest's own readiness and liveness probes as
// the kubelet does, with no credentials: they must pass, while /metrics
// refuses a client without them.
func TestPodProbesWithBasicAuth(t *testing.T) {
	podTools(t)
	ds := render(t)["observe"].daemonSet(t)
	c := ds.Spec.Template.Spec.Containers[0]
	bin := nodetuneBinary(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntpa"})
	side := bed.A
	p := emulate(t, ds, side.NS, map[string]string{"/var/lib/nodetune": t.TempDir()})
	// Readable by the pod's user, as a mounted Secret would be.
	dir, err := os.MkdirTemp("", "nodetune-web-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(cfg, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.start(t, bin, "--probe.interval=1s", "--kube-proxy.url=", "--web.config.file="+cfg)
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		Dial: func(network, a string) (conn net.Conn, err error) {
			err = side.Do(func() error { conn, err = net.Dial(network, a); return err })
			return conn, err
		},
	}}
	get := func(u string) (int, error) {
		resp, err := client.Get(u)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for name, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		u := probeURL(t, c, probe)
		waitFor(t, name+" probe "+u, func() error {
			code, err := get(u)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("HTTP %d", code)
			}
			return err
		})
	}
	// The manifest's metrics address: the node's IP, here the loopback.
	if code, err := get("http://127.0.0.1:9848/metrics"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("/metrics without credentials: HTTP %d, %v; want 401 (auth is not on, so the test proves nothing)", code, err)
	}
}

// probeURL is the URL the kubelet requests for an httpGet probe of c:
// scheme, host (default the pod IP, which is the node IP here), port (by
// name through c's ports) and path.
func probeURL(t *testing.T, c corev1.Container, p *corev1.Probe) string {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Fatalf("%s: not an httpGet probe", c.Name)
	}
	g := p.HTTPGet
	host := g.Host
	if host == "" {
		host = downward["status.hostIP"]
	}
	port := int(g.Port.IntVal)
	if g.Port.StrVal != "" {
		for _, cp := range c.Ports {
			if cp.Name == g.Port.StrVal {
				port = int(cp.ContainerPort)
			}
		}
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + g.Path
}
