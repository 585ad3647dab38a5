package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// holdIdle opens n connections to addr inside side's namespace, makes one
// keep-alive request on each and leaves it idle, as a client that never
// closes would. It returns how many it holds; they close with the test.
func holdIdle(t *testing.T, side *testbed.Side, addr string, n int) int {
	t.Helper()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range n {
		c, err := side.DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i, n, err)
		}
		conns = append(conns, c)
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(c, "GET /readyz HTTP/1.1\r\nHost: nodetune\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			continue // evicted before it was answered: the server made room
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return len(conns)
}

// idleConns is how many idle keep-alive connections TestServeIdleConnections
// holds: 5,000 by default, as in the report that took the agent to 124 MB.
func idleConns(t *testing.T) int {
	if v := os.Getenv("NODETUNE_IDLE_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("NODETUNE_IDLE_CONNS=%q", v)
		}
		return n
	}
	return 5000
}

// TestServeIdleConnections holds thousands of idle keep-alive connections
// open against the real nodetune serve: its memory must stay far below the
// DaemonSet's 100 MiB limit, and Prometheus's scrapes must still be
// answered while they are held.
func TestServeIdleConnections(t *testing.T) {
	privtest.Root(t)
	bin := nodetuneBinary(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntsk"})
	side := bed.A
	serve := startIn(t, side.NS, bin, "serve", "--web.listen-address="+serveAddr,
		"--probe.interval=30s", "--probe.window=100ms", "--kube-proxy.url=")
	client := nsClient(side)
	eventually(t, 10*time.Second, "nodetune /readyz", func() error {
		_, err := getBody(client, "http://"+serveAddr+"/readyz")
		return err
	})
	before := rssBytes(t, serve.cmd.Process.Pid)
	n := idleConns(t)
	start := time.Now()
	held := holdIdle(t, side, serveAddr, n)
	opened := time.Since(start)
	after := rssBytes(t, serve.cmd.Process.Pid)
	t.Logf("RSS %.1f MiB before, %.1f MiB with %d idle connections held (opened in %s)", before/(1<<20), after/(1<<20), held, opened.Round(time.Millisecond))
	for i := range 3 {
		start := time.Now()
		if err := scrapeOnce(client, "http://"+serveAddr+"/metrics"); err != nil {
			t.Fatalf("scrape %d while %d connections are held: %v", i, held, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("scrape %d took %s while %d connections are held", i, took, held)
		}
	}
	// 5,000 idle connections cost the unbounded server about 95 MiB more
	// than this; the limit keeps the agent within a few MiB of its start.
	if grew := (after - before) / (1 << 20); grew > 16 || after > 64<<20 {
		t.Errorf("RSS grew by %.1f MiB to %.1f MiB with %d idle connections", grew, after/(1<<20), held)
	}
}

// TestServeHealthWithoutAuth: with basic auth on the metrics listener, the
// health listener still answers the kubelet's unauthenticated probes, and
// serves nothing else.
func TestServeHealthWithoutAuth(t *testing.T) {
	privtest.Root(t)
	bin := nodetuneBinary(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntsh"})
	side := bed.A
	cfg := basicAuthConfig(t, "prometheus", "s3cret")
	const health = "127.0.0.1:9751"
	startIn(t, side.NS, bin, "serve", "--web.listen-address="+serveAddr, "--web.config.file="+cfg,
		"--web.health-address="+health, "--probe.interval=30s", "--probe.window=100ms", "--kube-proxy.url=")
	client := nsClient(side)
	for _, path := range []string{"/readyz", "/healthz"} {
		eventually(t, 10*time.Second, "unauthenticated "+path+" on the health listener", func() error {
			_, err := getBody(client, "http://"+health+path)
			return err
		})
	}
	for u, want := range map[string]int{
		"http://" + serveAddr + "/healthz": http.StatusUnauthorized,
		"http://" + health + "/metrics":    http.StatusNotFound,
		"http://" + health + "/findings":   http.StatusNotFound,
	} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: HTTP %d, want %d", u, resp.StatusCode, want)
		}
	}
}

// TestServeSIGHUP: SIGHUP stops serve as SIGTERM does: --rollback-on-exit
// restores what remediation changed, "stopped" is logged, and the exit
// status is 0. Go's default action for SIGHUP would kill it mid-way.
func TestServeSIGHUP(t *testing.T) {
	privtest.Root(t)
	bin := nodetuneBinary(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntsu"})
	side := bed.A
	if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		t.Fatal(err)
	}
	serve := startIn(t, side.NS, bin, "serve", "--mode=remediate", "--rollback-on-exit",
		"--state-dir="+t.TempDir(), "--web.listen-address="+serveAddr,
		"--probe.interval=30s", "--probe.window=200ms", "--kube-proxy.url=")
	waitFeature(t, side, side.Tunnel, true, 15*time.Second)
	_ = serve.cmd.Process.Signal(syscall.SIGHUP)
	done := make(chan error, 1)
	go func() { done <- serve.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve did not exit 0 on SIGHUP: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20 s of SIGHUP")
	}
	if f, err := side.Features(side.Tunnel); err != nil || f["tx-checksum-ip-generic"] {
		t.Errorf("--rollback-on-exit did not restore tx checksum offload off on SIGHUP (on %v, err %v)", f["tx-checksum-ip-generic"], err)
	}
	if out := serve.out.String(); !strings.Contains(out, "nodetune serve stopped") {
		t.Errorf("no \"stopped\" in the log:\n%s", out)
	}
}
