package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/report"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// proc is a process the test started, with its output kept for failures.
type proc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startIn starts argv inside network namespace ns. `ip netns exec` execs
// the program, so the pid is the program's own and only it is signalled.
// The process is killed when the test ends, and its output logged if the
// test failed.
func startIn(t testing.TB, ns string, argv ...string) *proc {
	t.Helper()
	p := &proc{out: &syncBuffer{}}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", argv[0], err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(argv[0]), p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits; it returns the exit error, if any.
func (p *proc) stop(t *testing.T) error {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("%s did not stop within 20 s of SIGTERM", p.cmd.Args[3])
		return nil
	}
}

// nsClient is an HTTP client whose connections are made inside side's
// network namespace, where the servers under test listen on loopback.
func nsClient(side *testbed.Side) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext:       side.DialContext,
		},
	}
}

// eventually polls fn every 100 ms until it returns nil or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getBody(c *http.Client, u string) (string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: HTTP %d: %s", u, resp.StatusCode, b)
	}
	return string(b), nil
}

const (
	serveAddr = "127.0.0.1:9750"
	promAddr  = "127.0.0.1:9090"
)

// TestServeScrapedByPrometheus runs nodetune serve in a VXLAN testbed
// namespace whose tunnel has tx checksum offload off, has Debian's
// Prometheus scrape it from the same namespace, and asks Prometheus for the
// finding through PromQL.
func TestServeScrapedByPrometheus(t *testing.T) {
	privtest.Root(t)
	prometheus := privtest.Tool(t, "prometheus")
	bin := nodetuneBinary(t)
	bed := testbedtest.New(t, testbed.Options{TunnelName: "vxlan.calico"})
	side := bed.A
	if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		t.Fatal(err)
	}
	serve := startIn(t, side.NS, bin, "serve", "--web.listen-address="+serveAddr,
		"--probe.interval=2s", "--probe.window=200ms", "--kube-proxy.url=", "--log.level=debug")
	client := nsClient(side)

	eventually(t, 10*time.Second, "nodetune /readyz", func() error {
		_, err := getBody(client, "http://"+serveAddr+"/readyz")
		return err
	})
	body, err := getBody(client, "http://"+serveAddr+"/findings")
	if err != nil {
		t.Fatal(err)
	}
	var doc report.Document
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("/findings is not the doctor document: %v", err)
	}
	if !hasFinding(doc.Findings, rules.TunnelTxChecksumOff, side.Tunnel) {
		t.Fatalf("/findings lacks %s on %s: %s", rules.TunnelTxChecksumOff, side.Tunnel, body)
	}
	// The benchmark is off unless --web.enable-bench asks for it.
	resp, err := client.Post("http://"+serveAddr+"/bench", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /bench without --web.enable-bench: HTTP %d, want 404", resp.StatusCode)
	}

	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: nodetune\n    static_configs:\n      - targets: ['%s']\n", serveAddr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	startIn(t, side.NS, prometheus, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr)

	query := `nodetune_finding{rule="tunnel-tx-checksum-off",subject="` + side.Tunnel + `"}`
	eventually(t, 60*time.Second, "PromQL "+query, func() error {
		body, err := getBody(client, "http://"+promAddr+"/api/v1/query?query="+url.QueryEscape(query))
		if err != nil {
			return err
		}
		var r struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  [2]any            `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			return fmt.Errorf("decoding %s: %w", body, err)
		}
		if r.Status != "success" || len(r.Data.Result) != 1 {
			return fmt.Errorf("answer %s", body)
		}
		m := r.Data.Result[0]
		if m.Metric["severity"] != "warning" || m.Metric["job"] != "nodetune" || m.Value[1] != "1" {
			return fmt.Errorf("unexpected series %v = %v", m.Metric, m.Value)
		}
		return nil
	})

	// Offload back on: the link notification makes nodetune drop the
	// finding long before the 2 s interval would.
	if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "finding cleared after offload came back", func() error {
		body, err := getBody(client, "http://"+serveAddr+"/metrics")
		if err != nil {
			return err
		}
		if strings.Contains(body, `nodetune_finding{rule="tunnel-tx-checksum-off"`) {
			return fmt.Errorf("finding still exported")
		}
		return nil
	})

	if err := serve.stop(t); err != nil {
		t.Errorf("nodetune serve did not exit cleanly on SIGTERM: %v", err)
	}
	if out := serve.out.String(); !strings.Contains(out, "nodetune serve stopped") {
		t.Errorf("no graceful shutdown in the log:\n%s", out)
	}
}

func hasFinding(fs []rules.Finding, rule, subject string) bool {
	for _, f := range fs {
		if f.Rule == rule && f.Subject == subject {
			return true
		}
	}
	return false
}

// waitFeature polls dev's tx checksum offload in side until it is want,
// and returns how long that took.
func waitFeature(t *testing.T, side *testbed.Side, dev string, want bool, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		f, err := side.Features(dev)
		if err != nil {
			t.Fatal(err)
		}
		if f["tx-checksum-ip-generic"] == want {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("tx-checksum-ip-generic on %s still %v after %s", dev, !want, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// metricValue returns the value of series in a scrape, or -1 if absent.
func metricValue(t testing.TB, c *http.Client, series string) float64 {
	t.Helper()
	body, err := getBody(c, "http://"+serveAddr+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// TestServeRemediates switches tx checksum offload off on a testbed tunnel
// under nodetune serve --mode remediate and times how long nodetune takes
// to switch it back on. The probe interval is 30 s, so a fix within seconds
// can only come from the link notification. On SIGTERM with
// --rollback-on-exit, nodetune restores the value it found.
func TestServeRemediates(t *testing.T) {
	privtest.Root(t)
	bin := nodetuneBinary(t)
	bed := testbedtest.New(t, testbed.Options{})
	side := bed.A
	serve := startIn(t, side.NS, bin, "serve", "--mode=remediate", "--rollback-on-exit",
		"--state-dir="+t.TempDir(), "--web.listen-address="+serveAddr,
		"--probe.interval=30s", "--probe.window=200ms", "--kube-proxy.url=", "--log.level=debug")
	client := nsClient(side)
	eventually(t, 10*time.Second, "nodetune /readyz", func() error {
		_, err := getBody(client, "http://"+serveAddr+"/readyz")
		return err
	})

	var took []time.Duration
	for range 3 {
		if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
			t.Fatal(err)
		}
		took = append(took, waitFeature(t, side, side.Tunnel, true, 10*time.Second))
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("tx checksum offload switched off on %s was back on after %v", side.Tunnel, took)
	f, err := side.Features(side.Tunnel)
	if err != nil {
		t.Fatal(err)
	}
	if !f["tx-tcp-segmentation"] {
		t.Errorf("TSO did not come back with tx checksum offload: %v", f)
	}
	// Three fixes 300 ms apart are three reverts well inside the window,
	// which the default back-off (3 re-applies) still allows.
	applied := `nodetune_remediations_total{action="apply",result="verified",rule="tunnel-tx-checksum-off"}`
	if got := metricValue(t, client, applied); got != 3 {
		t.Errorf("%s = %v, want 3", applied, got)
	}

	// Offload is on now and was off before nodetune's first write: a
	// rollback on exit puts back what nodetune found.
	if err := serve.stop(t); err != nil {
		t.Fatalf("nodetune serve did not exit cleanly on SIGTERM: %v", err)
	}
	f, err = side.Features(side.Tunnel)
	if err != nil {
		t.Fatal(err)
	}
	if f["tx-checksum-ip-generic"] {
		t.Errorf("--rollback-on-exit left tx checksum offload on; the journal's original value was off")
	}
}

// TestServeBacksOffFromReverter fights a reverter that switches offload
// off whenever it finds it on, as Calico's Felix does (but every 50 ms
// instead of every 10 s). nodetune must re-apply at most 3 times, then stop,
// report a remediation-conflict finding naming Felix, and stay stopped.
func TestServeBacksOffFromReverter(t *testing.T) {
	privtest.Root(t)
	bin := nodetuneBinary(t)
	bed := testbedtest.New(t, testbed.Options{TunnelName: "vxlan.calico"})
	side := bed.A
	if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		t.Fatal(err)
	}
	// Felix owns vxlan.calico, so nodetune only touches it with --force.
	startIn(t, side.NS, bin, "serve", "--mode=remediate", "--force",
		"--state-dir="+t.TempDir(), "--web.listen-address="+serveAddr,
		"--probe.interval=30s", "--probe.window=200ms", "--kube-proxy.url=", "--log.level=debug")
	client := nsClient(side)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reverts atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			f, err := side.Features(side.Tunnel)
			if err != nil {
				t.Error(err)
				return
			}
			if f["tx-checksum-ip-generic"] {
				if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
					t.Error(err)
					return
				}
				reverts.Add(1)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	var doc report.Document
	eventually(t, 20*time.Second, "remediation-conflict finding", func() error {
		body, err := getBody(client, "http://"+serveAddr+"/findings")
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			return err
		}
		if !hasFinding(doc.Findings, rules.RemediationConflict, side.Tunnel) {
			return fmt.Errorf("no %s finding yet", rules.RemediationConflict)
		}
		return nil
	})
	for _, f := range doc.Findings {
		if f.Rule == rules.RemediationConflict && (f.Owner == nil || f.Owner.Name != "calico-felix" || !strings.Contains(f.Summary, "calico-felix")) {
			t.Errorf("the conflict finding does not name Felix: %+v", f)
		}
	}
	// Let the reverter run on: nodetune must not touch the device again.
	applied := `nodetune_remediations_total{action="apply",result="verified",rule="tunnel-tx-checksum-off"}`
	before := metricValue(t, client, applied)
	time.Sleep(2 * time.Second)
	after := metricValue(t, client, applied)
	conflicts := metricValue(t, client, `nodetune_remediation_conflicts_total{rule="tunnel-tx-checksum-off",subject="vxlan.calico"}`)
	t.Logf("applies %v, conflicts %v, reverter switched offload off %d times", after, conflicts, reverts.Load())
	if before != 4 || after != 4 {
		t.Errorf("%s = %v then %v; want 4 (the first fix and 3 re-applies), and no more", applied, before, after)
	}
	if conflicts != 4 {
		t.Errorf("conflicts counted %v, want 4 (the fourth revert ends the fight)", conflicts)
	}
	if got := metricValue(t, client, `nodetune_finding{rule="remediation-conflict",severity="warning",subject="vxlan.calico"}`); got != 1 {
		t.Errorf("remediation-conflict not exported: %v", got)
	}
}

// TestServeBench asks a running nodetune serve for an on-demand benchmark
// (POST /bench): its figures become nodetune_measured_throughput_bps, and
// the offload finding quotes the loss measured on this node.
func TestServeBench(t *testing.T) {
	privtest.Root(t)
	bin := nodetuneBinary(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntsb"})
	side := bed.A
	if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		t.Fatal(err)
	}
	token := writeToken(t, "bench-token")
	startIn(t, side.NS, bin, "serve", "--web.listen-address="+serveAddr, "--web.enable-bench", "--bench.duration=300ms",
		"--peer.token-file="+token, "--probe.interval=30s", "--probe.window=200ms", "--kube-proxy.url=", "--log.level=debug")
	client := nsClient(side)
	client.Timeout = 2 * time.Minute
	eventually(t, 10*time.Second, "nodetune /readyz", func() error {
		_, err := getBody(client, "http://"+serveAddr+"/readyz")
		return err
	})
	// POST /bench takes the peer token: none or a wrong one is refused.
	for _, auth := range []string{"", "Bearer wrong-token", "bench-token"} {
		resp := postBench(t, client, auth)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST /bench with Authorization %q: HTTP %d, want 401", auth, resp.StatusCode)
		}
	}
	resp := postBench(t, client, "Bearer bench-token")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /bench: HTTP %d: %s", resp.StatusCode, body)
	}
	var got struct {
		Paths []struct {
			Path string  `json:"path"`
			BPS  float64 `json:"bits_per_second"`
		} `json:"paths"`
		LossRatio float64 `json:"loss_ratio"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	t.Logf("measured: %+v", got)
	if len(got.Paths) < 3 || got.LossRatio <= 0 || got.LossRatio >= 1 {
		t.Fatalf("benchmark answer lacks the paths or a loss in (0,1): %s", body)
	}
	// The daemon re-judges its last snapshot with the new figures right
	// after answering.
	eventually(t, 5*time.Second, "measured throughput exported", func() error {
		for _, p := range got.Paths {
			if v := metricValue(t, client, `nodetune_measured_throughput_bps{path="`+p.Path+`"}`); v != p.BPS || v <= 0 {
				return fmt.Errorf("nodetune_measured_throughput_bps{path=%q} = %v, want %v", p.Path, v, p.BPS)
			}
		}
		return nil
	})
	eventually(t, 5*time.Second, "finding quotes the measured loss", func() error {
		body, err := getBody(client, "http://"+serveAddr+"/findings")
		if err != nil {
			return err
		}
		var doc report.Document
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			return err
		}
		for _, f := range doc.Findings {
			if f.Rule == rules.TunnelTxChecksumOff && f.Impact.ThroughputLossRatio == got.LossRatio {
				return nil
			}
		}
		return fmt.Errorf("no %s finding with loss %v", rules.TunnelTxChecksumOff, got.LossRatio)
	})
}

// postBench sends POST /bench with the Authorization header auth, if any.
func postBench(t *testing.T, c *http.Client, auth string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+serveAddr+"/bench", nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestServeBasicAuth: --web.config.file is exporter-toolkit's, so basic
// auth (and TLS) work as in node_exporter.
func TestServeBasicAuth(t *testing.T) {
	privtest.Root(t)
	bin := nodetuneBinary(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntsa"})
	side := bed.A
	cfg := basicAuthConfig(t, "prometheus", "s3cret")
	startIn(t, side.NS, bin, "serve", "--web.listen-address="+serveAddr, "--web.config.file="+cfg,
		"--probe.interval=30s", "--probe.window=100ms", "--kube-proxy.url=")
	client := nsClient(side)
	url := "http://" + serveAddr + "/metrics"
	eventually(t, 10*time.Second, "an unauthenticated scrape is refused", func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("HTTP %d, want 401", resp.StatusCode)
		}
		return nil
	})
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.SetBasicAuth("prometheus", "s3cret")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "nodetune_build_info") {
		t.Errorf("authenticated scrape: HTTP %d: %.200s", resp.StatusCode, body)
	}
}

// TestServeUnusableJournalObserves: remediate mode with a journal it must
// not use (here, not a nodetune journal) keeps serving in observe mode
// instead of exiting into a crash loop, exports nodetune_journal_ok 0, and
// leaves both the file and the device alone.
func TestServeUnusableJournalObserves(t *testing.T) {
	privtest.Root(t)
	bin := nodetuneBinary(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntsj"})
	side := bed.A
	if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	journal := filepath.Join(stateDir, "journal.jsonl")
	foreign := []byte("not a journal\n")
	if err := os.WriteFile(journal, foreign, 0o600); err != nil {
		t.Fatal(err)
	}
	serve := startIn(t, side.NS, bin, "serve", "--mode=remediate", "--state-dir="+stateDir,
		"--web.listen-address="+serveAddr, "--probe.interval=1s", "--probe.window=100ms", "--kube-proxy.url=")
	client := nsClient(side)
	eventually(t, 10*time.Second, "nodetune /readyz", func() error {
		_, err := getBody(client, "http://"+serveAddr+"/readyz")
		return err
	})
	time.Sleep(1500 * time.Millisecond) // a full cycle after the first
	if got := metricValue(t, client, "nodetune_journal_ok"); got != 0 {
		t.Errorf("nodetune_journal_ok = %v, want 0", got)
	}
	if f, err := side.Features(side.Tunnel); err != nil || f["tx-checksum-ip-generic"] {
		t.Errorf("serve changed the device without its journal (tx checksum %v, err %v)", f["tx-checksum-ip-generic"], err)
	}
	if b, err := os.ReadFile(journal); err != nil || !bytes.Equal(b, foreign) {
		t.Errorf("the foreign journal was changed: %q, %v", b, err)
	}
	if err := serve.stop(t); err != nil {
		t.Errorf("serve did not run on and stop cleanly: %v", err)
	}
	if out := serve.out.String(); !strings.Contains(out, "remediation is off") {
		t.Errorf("no error about the journal in the log:\n%s", out)
	}
}

// TestServeListenAddress: the DaemonSet's $(NODE_IP):9848 is a valid listen
// address on IPv4 and IPv6 nodes alike.
func TestServeListenAddress(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.5:9848":       "10.0.0.5:9848",
		"fd00::5:9848":        "[fd00::5]:9848",
		"[fd00::5]:9848":      "[fd00::5]:9848",
		":9848":               ":9848",
		"localhost:9848":      "localhost:9848",
		"2001:db8::1:2:3:4:1": "[2001:db8::1:2:3:4]:1",
		"nonsense":            "nonsense",
	} {
		if got := listenAddress(in); got != want {
			t.Errorf("listenAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

// basicAuthConfig writes an exporter-toolkit web configuration that lets
// user in with password, and returns its path.
func basicAuthConfig(t *testing.T, user, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(cfg, []byte("basic_auth_users:\n  "+user+": "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}
