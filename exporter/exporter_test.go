package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/report"
	"github.com/nodetune/nodetune/rules"
)

// fixtureSnapshot is a Calico node on kernel 6.18 whose VXLAN device has tx
// checksum offload off, with a conntrack table 90% full.
func fixtureSnapshot(t testing.TB) *detect.Snapshot {
	t.Helper()
	v, err := detect.ParseRelease("6.18.0")
	if err != nil {
		t.Fatal(err)
	}
	return &detect.Snapshot{
		Taken:  time.Unix(1700000000, 0),
		Window: 30 * time.Second,
		Kernel: detect.Kernel{Release: "6.18.0", Version: v},
		Memory: detect.Memory{TotalBytes: 8 << 30},
		Tunnels: detect.Tunnels{Devices: []detect.Tunnel{{
			Name: "vxlan.calico", Index: 4, Kind: detect.KindVXLAN, VNI: 4096, Port: 4789, MTU: 1450, Up: true,
			Features: detect.Features{State: map[string]bool{
				detect.FeatureTxChecksumGeneric: false,
				detect.FeatureTSO:               false,
				detect.FeatureGRO:               true,
			}},
			Underlay: &detect.Underlay{Name: "eth0", Index: 2, MTU: 1500, Source: "default-route"},
		}}},
		CPU: detect.CPU{
			PerCPU: []detect.CPUUsage{{CPU: 0, Softirq: 0.25, Steal: 0.02, Idle: 0.5}, {CPU: 1, Softirq: 0.05, Steal: 0.04, Idle: 0.9}},
			Total:  detect.CPUUsage{CPU: -1, Softirq: 0.15, Steal: 0.03, Idle: 0.7},
		},
		Softnet: detect.Softnet{
			Totals:     detect.SoftnetCounters{Processed: 1000000, Dropped: 17, TimeSqueezed: 3},
			MaxBacklog: 1000, Budget: 300,
		},
		Conntrack: detect.Conntrack{
			Present: true, Count: 900, Max: 1000,
			Totals: detect.ConntrackCounters{InsertFailed: 5, Drop: 2, EarlyDrop: 1},
		},
		UDP: detect.UDP{InCsumErrors: 0},
		CNI: detect.CNI{Name: detect.CNICalico, Evidence: []string{"device vxlan.calico"}},
		Probes: []detect.ProbeRun{
			{Name: "tunnels", Duration: 2 * time.Millisecond},
			{Name: "kube_proxy", Duration: time.Millisecond, Err: detect.Fail(errors.New("asking kube-proxy: timeout"))},
		},
	}
}

func fixtureState(t testing.TB) *State {
	s := fixtureSnapshot(t)
	return &State{
		Snapshot:   s,
		Result:     rules.Evaluate(s, rules.DefaultConfig()),
		Throughput: []Throughput{{Path: "vxlan-offload-on", BitsPerSecond: 30.5e9}},
	}
}

func TestCollectFixture(t *testing.T) {
	e := New("1.2.3")
	e.Update(fixtureState(t))
	e.RecordRemediation(rules.TunnelTxChecksumOff, "apply", "verified")
	e.RecordConflict(rules.TunnelTxChecksumOff, "vxlan.calico")

	want := `
# HELP nodetune_finding 1 for each active finding: a cause of lost network throughput or latency that nodetune sees on this node now. Rule IDs are stable.
# TYPE nodetune_finding gauge
nodetune_finding{rule="cni-owns-offload",severity="warning",subject="vxlan.calico"} 1
nodetune_finding{rule="conntrack-near-full",severity="warning",subject="conntrack"} 1
nodetune_finding{rule="softnet-drops",severity="info",subject="netdev_budget"} 0
nodetune_finding{rule="tunnel-tx-checksum-off",severity="warning",subject="vxlan.calico"} 1
`
	// The fixture has no window deltas, so softnet-drops must not fire:
	// drop the line that says otherwise, which proves the comparison bites.
	want = strings.Replace(want, "nodetune_finding{rule=\"softnet-drops\",severity=\"info\",subject=\"netdev_budget\"} 0\n", "", 1)
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(want), "nodetune_finding"); err != nil {
		t.Error(err)
	}

	values := map[string]float64{
		`nodetune_estimated_throughput_loss_ratio{rule="tunnel-tx-checksum-off",subject="vxlan.calico"}`:        rules.EstimatedChecksumOffLoss,
		`nodetune_tunnel_offload_enabled{device="vxlan.calico",feature="tx-checksum-ip-generic",kind="vxlan"}`:  0,
		`nodetune_tunnel_offload_enabled{device="vxlan.calico",feature="rx-gro",kind="vxlan"}`:                  1,
		`nodetune_tunnel_mtu_bytes{device="vxlan.calico",kind="vxlan"}`:                                         1450,
		`nodetune_cpu_softirq_ratio{cpu="0"}`:                                                                   0.25,
		`nodetune_cpu_steal_ratio{cpu="1"}`:                                                                     0.04,
		`nodetune_softnet_processed_total`:                                                                      1e6,
		`nodetune_softnet_dropped_total`:                                                                        17,
		`nodetune_softnet_times_squeezed_total`:                                                                 3,
		`nodetune_conntrack_entries`:                                                                            900,
		`nodetune_conntrack_limit`:                                                                              1000,
		`nodetune_conntrack_usage_ratio`:                                                                        0.9,
		`nodetune_conntrack_insert_failed_total`:                                                                5,
		`nodetune_conntrack_drop_total`:                                                                         2,
		`nodetune_conntrack_early_drop_total`:                                                                   1,
		`nodetune_udp_checksum_errors_total`:                                                                    0,
		`nodetune_probe_duration_seconds{probe="tunnels"}`:                                                      0.002,
		`nodetune_probe_success{probe="tunnels"}`:                                                               1,
		`nodetune_probe_success{probe="kube_proxy"}`:                                                            0,
		`nodetune_remediations_total{action="apply",result="verified",rule="tunnel-tx-checksum-off"}`:           1,
		`nodetune_remediation_conflicts_total{rule="tunnel-tx-checksum-off",subject="vxlan.calico"}`:            1,
		`nodetune_measured_throughput_bps{path="vxlan-offload-on"}`:                                             30.5e9,
		`nodetune_snapshot_ready`:                                                                               1,
		`nodetune_snapshot_window_seconds`:                                                                      30,
		`nodetune_snapshot_timestamp_seconds`:                                                                   1700000000,
		`nodetune_build_info{goversion="` + runtime.Version() + `",version="1.2.3"}`:                            1,
		`nodetune_rule_unchecked{rule="tunnel-tx-checksum-unsafe",subject="vxlan.calico"}`:                      -1, // must be absent
		`nodetune_estimated_throughput_loss_ratio{rule="conntrack-near-full",subject="conntrack"}`:              -1, // no throughput figure
		`nodetune_tunnel_offload_enabled{device="vxlan.calico",feature="tx-udp_tnl-segmentation",kind="vxlan"}`: -1, // not in the fixture
		`nodetune_finding{rule="tunnel-tx-checksum-unsafe",severity="warning",subject="vxlan.calico"}`:          -1,
		`nodetune_tunnel_offload_enabled{device="eth0",feature="tx-checksum-ip-generic",kind="vxlan"}`:          -1, // underlays are not tunnels
		`nodetune_probe_duration_seconds{probe="counters"}`:                                                     -1,
		`nodetune_cpu_softirq_ratio{cpu="-1"}`:                                                                  -1, // the total is not a CPU
		`nodetune_remediations_total{action="apply",result="failed",rule="tunnel-tx-checksum-off"}`:             -1,
		`nodetune_remediation_conflicts_total{rule="tunnel-tx-checksum-unsafe",subject="vxlan.calico"}`:         -1,
		`nodetune_conntrack_usage_ratio{cpu="0"}`:                                                               -1,
	}
	got := scrape(t, e)
	for series, v := range values {
		g, ok := got[series]
		switch {
		case v < 0 && ok:
			t.Errorf("%s = %v, want it absent", series, g)
		case v >= 0 && !ok:
			t.Errorf("%s missing from the scrape", series)
		case v >= 0 && g != v:
			t.Errorf("%s = %v, want %v", series, g, v)
		}
	}
}

// scrape gathers e's metrics through its HTTP handler and returns each
// series' value, keyed by the series as the text format prints it.
func scrape(t testing.TB, e *Exporter) map[string]float64 {
	t.Helper()
	body := get(t, e, "/metrics", http.StatusOK)
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err != nil {
			t.Fatalf("scrape line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func get(t testing.TB, e *Exporter, path string, wantCode int) string {
	t.Helper()
	h, err := e.Handler(HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != wantCode {
		t.Fatalf("GET %s: HTTP %d, want %d: %s", path, rec.Code, wantCode, rec.Body.String())
	}
	return rec.Body.String()
}

// TestMetricNamesAllEmitted proves MetricNames is the truth: the fixture
// emits every name it lists, and every nodetune_ family scraped is listed.
func TestMetricNamesAllEmitted(t *testing.T) {
	e := New("test")
	st := fixtureState(t)
	st.Result.Unchecked = append(st.Result.Unchecked, rules.Unchecked{Rule: rules.CPUStealHigh, Reason: "test"})
	st.Snapshot.UDP.Delta = 1
	st.Snapshot.UDP.Capture = &detect.ChecksumCapture{OtherBad: 1, Sources: []detect.BadChecksumSource{{Addr: netip.MustParseAddr("192.0.2.9"), Port: 1, DstPort: 53, Count: 1}}}
	st.Snapshot.Peers = peerMeasurements()
	e.Update(st)
	e.RecordRemediation("r", "a", "failed")
	e.RecordConflict("r", "s")
	e.RecordRefusal("r", "owner")
	e.SetRemediation(&Remediation{JournalOK: true, Owned: 2, LastSuccess: time.Unix(1700000000, 0)})
	families, err := e.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var scraped []string
	for _, mf := range families {
		if strings.HasPrefix(mf.GetName(), "nodetune_") {
			scraped = append(scraped, mf.GetName())
		}
	}
	declared := MetricNames()
	slices.Sort(declared)
	if diff := cmp.Diff(declared, scraped); diff != "" {
		t.Errorf("MetricNames() vs scraped nodetune_ families (-declared +scraped):\n%s", diff)
	}
}

// TestRemediationMetrics: the remediation state is absent in observe mode,
// says so when the journal is unusable, and carries the serve loop's counts.
func TestRemediationMetrics(t *testing.T) {
	e := New("test")
	e.Update(fixtureState(t))
	names := []string{"nodetune_journal_ok", "nodetune_remediation_settings_owned",
		"nodetune_remediation_settings_given_up", "nodetune_remediation_last_success_timestamp_seconds"}
	for _, n := range names {
		if _, ok := scrape(t, e)[n]; ok {
			t.Errorf("%s exported in observe mode", n)
		}
	}
	e.SetRemediation(&Remediation{JournalOK: false})
	got := scrape(t, e)
	if v, ok := got["nodetune_journal_ok"]; !ok || v != 0 {
		t.Errorf("nodetune_journal_ok = %v (present %v) with an unusable journal; want 0", v, ok)
	}
	if _, ok := got["nodetune_remediation_last_success_timestamp_seconds"]; ok {
		t.Error("a last success time exported though nodetune never remediated")
	}
	e.SetRemediation(&Remediation{JournalOK: true, Owned: 3, GivenUp: 1, LastSuccess: time.Unix(1700000000, 500e6)})
	got = scrape(t, e)
	want := map[string]float64{"nodetune_journal_ok": 1, "nodetune_remediation_settings_owned": 3,
		"nodetune_remediation_settings_given_up": 1, "nodetune_remediation_last_success_timestamp_seconds": 1700000000.5}
	for n, v := range want {
		if got[n] != v {
			t.Errorf("%s = %v, want %v", n, got[n], v)
		}
	}
}

// TestHealthzStale drives /healthz with a fake clock: healthy through the
// start-up grace, failing once no snapshot came within it, healthy after
// one, failing again when the loop stops completing them.
func TestHealthzStale(t *testing.T) {
	e := New("test")
	now := time.Unix(1e9, 0)
	e.now = func() time.Time { return now }
	e.started = now
	h, err := e.Handler(HandlerOptions{StaleAfter: 91 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	check := func(want int, what string) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if rec.Code != want {
			t.Errorf("%s: /healthz HTTP %d (%q), want %d", what, rec.Code, rec.Body.String(), want)
		}
		if want != http.StatusOK && !strings.Contains(rec.Body.String(), "stuck") {
			t.Errorf("%s: /healthz says %q, not why", what, rec.Body.String())
		}
	}
	check(http.StatusOK, "at start")
	now = now.Add(90 * time.Second)
	check(http.StatusOK, "within the start-up grace")
	now = now.Add(2 * time.Second)
	check(http.StatusServiceUnavailable, "no snapshot after the grace")
	e.Update(fixtureState(t))
	check(http.StatusOK, "right after a snapshot")
	now = now.Add(91 * time.Second)
	check(http.StatusOK, "at the limit")
	now = now.Add(time.Second)
	check(http.StatusServiceUnavailable, "a stuck loop")
	e.Update(fixtureState(t))
	check(http.StatusOK, "the loop recovered")
}

func TestNotReady(t *testing.T) {
	e := New("test")
	get(t, e, "/readyz", http.StatusServiceUnavailable)
	get(t, e, "/findings", http.StatusServiceUnavailable)
	get(t, e, "/healthz", http.StatusOK)
	got := scrape(t, e)
	if got["nodetune_snapshot_ready"] != 0 {
		t.Errorf("nodetune_snapshot_ready = %v before the first snapshot, want 0", got["nodetune_snapshot_ready"])
	}
	for series := range got {
		if strings.HasPrefix(series, "nodetune_") && !strings.HasPrefix(series, "nodetune_build_info") && series != "nodetune_snapshot_ready" {
			t.Errorf("%s served before the first snapshot", series)
		}
	}
	e.Update(fixtureState(t))
	get(t, e, "/readyz", http.StatusOK)
}

func TestFindingsDocument(t *testing.T) {
	e := New("1.2.3")
	e.Update(fixtureState(t))
	var doc report.Document
	if err := json.Unmarshal([]byte(get(t, e, "/findings", http.StatusOK)), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Nodetune != "1.2.3" || doc.WindowSeconds != 30 {
		t.Errorf("document says nodetune %q, window %v s; want 1.2.3, 30", doc.Nodetune, doc.WindowSeconds)
	}
	var got []string
	for _, f := range doc.Findings {
		got = append(got, f.Rule+"/"+f.Subject)
	}
	want := []string{"cni-owns-offload/vxlan.calico", "conntrack-near-full/conntrack", "tunnel-tx-checksum-off/vxlan.calico"}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

// TestDuplicateFindingKeepsScrapeWorking: two findings of one rule on one
// subject must not turn the whole scrape into an error.
func TestDuplicateFindingKeepsScrapeWorking(t *testing.T) {
	e := New("test")
	st := fixtureState(t)
	st.Result.Findings = append(st.Result.Findings, st.Result.Findings...)
	st.Result.Unchecked = []rules.Unchecked{{Rule: "x", Reason: "a"}, {Rule: "x", Reason: "b"}}
	e.Update(st)
	got := scrape(t, e)
	if got[`nodetune_finding{rule="tunnel-tx-checksum-off",severity="warning",subject="vxlan.calico"}`] != 1 {
		t.Error("finding missing after duplicates")
	}
	if got[`nodetune_rule_unchecked{rule="x",subject=""}`] != 1 {
		t.Error("unchecked rule missing after duplicates")
	}
}

// TestUDPChecksumMetrics: the senders a capture named are exported with
// the receiving port and tunnel, one series per sender whatever its source
// ports, at most detect.MaxChecksumSources of them; what the rise was traced
// to is a state set.
func TestUDPChecksumMetrics(t *testing.T) {
	e := New("test")
	s := fixtureSnapshot(t)
	peer := netip.MustParseAddr("192.0.2.7")
	s.UDP.Delta, s.UDP.InCsumErrors6 = 9, 4
	s.UDP.Capture = &detect.ChecksumCapture{TunnelBad: 7, OtherBad: 2, Sources: []detect.BadChecksumSource{
		{Addr: peer, DstPort: 4789, Tunnel: "vxlan.calico", Count: 5},
		{Addr: peer, Port: 1234, DstPort: 4789, Tunnel: "vxlan.calico", Count: 2},
		{Addr: netip.MustParseAddr("198.51.100.9"), Port: 5353, DstPort: 9999, Count: 2},
	}}
	e.Update(&State{Snapshot: s, Result: rules.Evaluate(s, rules.DefaultConfig())})
	got := scrape(t, e)
	for series, v := range map[string]float64{
		`nodetune_udp_bad_checksum_packets{destination_port="4789",source="192.0.2.7",tunnel="vxlan.calico"}`: 7,
		`nodetune_udp_bad_checksum_packets{destination_port="9999",source="198.51.100.9",tunnel=""}`:          2,
		`nodetune_udp_checksum_attribution{attribution="tunnel"}`:                                             1,
		`nodetune_udp6_checksum_errors_total`:                                                                 4,
	} {
		if got[series] != v {
			t.Errorf("%s = %v, want %v", series, got[series], v)
		}
	}
	// A state set: every state present, 0 but the current one, so an
	// alert on attribution="tunnel" resolves with a 0, not a gap.
	for _, state := range []string{"quiet", "other", "unattributed"} {
		series := `nodetune_udp_checksum_attribution{attribution="` + state + `"}`
		if v, ok := got[series]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0", series, v, ok)
		}
	}
	n := 0
	for series := range got {
		if strings.HasPrefix(series, "nodetune_udp_bad_checksum_packets{") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d sender series, want 2", n)
	}
}

// TestPartialSnapshot: facts that could not be read are absent, not zero.
func TestPartialSnapshot(t *testing.T) {
	e := New("test")
	s := fixtureSnapshot(t)
	fail := detect.Fail(detect.ErrPermission)
	s.CPU.Err, s.Softnet.Err, s.Conntrack.Err, s.Conntrack.StatErr, s.UDP.Err = fail, fail, fail, fail, fail
	s.Tunnels.Devices[0].Features = detect.Features{Err: fail}
	e.Update(&State{Snapshot: s, Result: rules.Evaluate(s, rules.DefaultConfig())})
	got := scrape(t, e)
	for series := range got {
		for _, absent := range []string{"nodetune_cpu_", "nodetune_softnet_", "nodetune_conntrack_", "nodetune_udp_", "nodetune_tunnel_offload_"} {
			if strings.HasPrefix(series, absent) {
				t.Errorf("%s served from an unreadable fact", series)
			}
		}
	}
	if got[`nodetune_rule_unchecked{rule="tunnel-tx-checksum-off",subject="vxlan.calico"}`] != 1 {
		t.Errorf("unreadable features should show as an unchecked rule; got %v", got)
	}
}

// TestScrapeWhileUpdating runs scrapes against state swaps; under -race it
// proves a scrape sees one whole State.
func TestScrapeWhileUpdating(t *testing.T) {
	e := New("test")
	h, err := e.Handler(HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			st := fixtureState(t)
			st.Snapshot.Conntrack.Count = int64(i)
			e.Update(st)
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				resp, err := http.Get(srv.URL + "/metrics")
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("HTTP %d", resp.StatusCode)
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(done)
	wg.Wait()
}

// TestPromtoolCheckMetrics runs promtool's linter over a real scrape.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := privtest.Tool(t, "promtool")
	e := New("test")
	st := fixtureState(t)
	st.Snapshot.UDP.Delta = 2
	st.Snapshot.UDP.Capture = &detect.ChecksumCapture{TunnelBad: 2, Sources: []detect.BadChecksumSource{
		{Addr: netip.MustParseAddr("192.0.2.7"), DstPort: 4789, Tunnel: "vxlan.calico", Count: 2}}}
	st.Snapshot.Peers = peerMeasurements()
	e.Update(st)
	e.RecordRemediation(rules.TunnelTxChecksumOff, "apply", "verified")
	e.RecordConflict(rules.TunnelTxChecksumOff, "vxlan.calico")
	e.SetRemediation(&Remediation{JournalOK: true, Owned: 1, GivenUp: 1, LastSuccess: time.Unix(1700000000, 0)})
	body := get(t, e, "/metrics", http.StatusOK)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestBenchEndpoint(t *testing.T) {
	e := New("test")
	calls := 0
	h, err := e.Handler(HandlerOptions{Bench: func(ctx context.Context) (any, error) {
		calls++
		if calls > 1 {
			return nil, ErrBusy
		}
		return []Throughput{{Path: "p", BitsPerSecond: 1}}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{http.StatusOK, http.StatusTooManyRequests} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/bench", nil))
		if rec.Code != want {
			t.Errorf("POST /bench #%d: HTTP %d, want %d", i+1, rec.Code, want)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/bench", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /bench: HTTP %d, want 405", rec.Code)
	}

	// Without a BenchFunc (serve without --web.enable-bench): 404, saying
	// how to enable it.
	h, err = e.Handler(HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/bench", nil))
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "--web.enable-bench") {
		t.Errorf("POST /bench while off: HTTP %d %q, want 404 naming --web.enable-bench", rec.Code, rec.Body.String())
	}
}

// TestMetricsDocumented keeps docs/metrics.md in step with the exporter.
func TestMetricsDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range MetricNames() {
		if !strings.Contains(string(b), "| `"+name+"` |") {
			t.Errorf("docs/metrics.md has no table row for %s", name)
		}
	}
}
