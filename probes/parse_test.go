package probes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
)

func TestParseProxyMode(t *testing.T) {
	for in, want := range map[string]string{"iptables": "iptables", "ipvs\n": "ipvs", " nftables ": "nftables", "IPVS": "ipvs"} {
		got, err := ParseProxyMode(in)
		if err != nil || got != want {
			t.Errorf("ParseProxyMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "\n", "<html>404</html>", "ip tables", strings.Repeat("a", 64), "ipvs2"} {
		if got, err := ParseProxyMode(in); err == nil {
			t.Errorf("ParseProxyMode(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseKubeProxyMetrics(t *testing.T) {
	text := `# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram
kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="+Inf"} 4
kubeproxy_sync_proxy_rules_duration_seconds_sum 2
kubeproxy_sync_proxy_rules_duration_seconds_count 4
# TYPE kubeproxy_sync_proxy_rules_iptables_total gauge
kubeproxy_sync_proxy_rules_iptables_total{table="filter"} 7
kubeproxy_sync_proxy_rules_iptables_total{table="nat"} 1234
`
	rules, syncs, err := ParseKubeProxyMetrics(strings.NewReader(text))
	if err != nil || rules != 1234 || syncs != (detect.SyncHistogram{Count: 4, SumSeconds: 2}) {
		t.Errorf("got %d rules, %+v, %v; want 1234, 4 syncs in 2 s", rules, syncs, err)
	}
	rules, syncs, err = ParseKubeProxyMetrics(strings.NewReader("# TYPE other counter\nother 1\n"))
	if err != nil || rules != -1 || syncs != (detect.SyncHistogram{}) {
		t.Errorf("metrics without kube-proxy's: got %d, %+v, %v; want -1, none, nil", rules, syncs, err)
	}
	if _, _, err := ParseKubeProxyMetrics(strings.NewReader("kubeproxy{{{ 1")); err == nil {
		t.Error("garbage accepted")
	}
}

func FuzzParseProxyMode(f *testing.F) {
	for _, s := range []string{"iptables", "ipvs\n", "", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mode, err := ParseProxyMode(s)
		if err == nil && (mode == "" || strings.ContainsAny(mode, " \n\t")) {
			t.Fatalf("ParseProxyMode(%q) accepted %q", s, mode)
		}
	})
}

func FuzzParseKubeProxyMetrics(f *testing.F) {
	f.Add("kubeproxy_sync_proxy_rules_iptables_total{table=\"nat\"} 5\n")
	f.Add("# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram\nkubeproxy_sync_proxy_rules_duration_seconds_count 0\n")
	f.Fuzz(func(t *testing.T, s string) {
		rules, syncs, err := ParseKubeProxyMetrics(strings.NewReader(s))
		if err != nil && (rules != -1 || syncs != (detect.SyncHistogram{})) {
			t.Fatalf("error %v with values %d, %+v", err, rules, syncs)
		}
		if mean, ok := syncs.Mean(detect.SyncHistogram{}); ok && (mean < 0 || mean != mean) {
			t.Fatalf("mean sync time %v from %+v", mean, syncs)
		}
	})
}

// counterFiles are the procfs files a counter sample reads, relative to
// the procfs root, with a valid example of each.
var counterFiles = map[string]string{
	"stat":                  "cpu  10 0 10 100 0 0 5 1 0 0\ncpu0 10 0 10 100 0 0 5 1 0 0\nintr 0\nctxt 0\nbtime 0\nprocesses 0\nprocs_running 1\nprocs_blocked 0\n",
	"softirqs":              "                    CPU0\n          HI:          0\n       TIMER:          1\n      NET_TX:          2\n      NET_RX:          3\n       BLOCK:          0\n    IRQ_POLL:          0\n     TASKLET:          0\n       SCHED:          0\n     HRTIMER:          0\n         RCU:          0\n",
	"net/softnet_stat":      "00000010 00000001 00000002 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n",
	"net/stat/nf_conntrack": "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n00000000  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000003 00000001 00000000 00000000  00000000 00000000 00000000 00000000\n",
	"1/net/snmp":            "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\nUdp: 1 2 3 4 5 6 7 8 9\n",
}

// procTree writes files into a fresh procfs tree and opens a Host on it.
func procTree(t testing.TB, files map[string]string) *Host {
	t.Helper()
	h, _ := procTreeDir(t, files)
	return h
}

// procTreeDir is procTree that also returns the tree's directory.
func procTreeDir(t testing.TB, files map[string]string) (*Host, string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("1", filepath.Join(dir, "self")); err != nil {
		t.Fatal(err)
	}
	h, err := newHost(Paths{ProcFS: dir, SysFS: dir, RootFS: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h, dir
}

func rates(h *Host) *detect.Snapshot {
	s := &detect.Snapshot{}
	t0 := time.Unix(0, 0)
	cur := h.sample(t0.Add(time.Second))
	for id, c := range cur.cpu { // a second of CPU time went by
		c.Idle++
		cur.cpu[id] = c
	}
	applyRates(s, h.sample(t0), cur)
	return s
}

// TestCPUWindowTooShort: a window in which the CPUs' clocks hardly moved
// measures no ratio: CPU time is unknown, not "idle 0%".
func TestCPUWindowTooShort(t *testing.T) {
	h := procTree(t, counterFiles)
	t0 := time.Unix(0, 0)
	for name, add := range map[string]float64{"no tick": 0, "two ticks": 0.02} {
		cur := h.sample(t0.Add(20 * time.Millisecond))
		for id, c := range cur.cpu {
			c.Idle += add
			cur.cpu[id] = c
		}
		s := &detect.Snapshot{}
		applyRates(s, h.sample(t0), cur)
		if !errors.Is(s.CPU.Err, detect.ErrTooShort) {
			t.Errorf("%s: CPU error %v, want %v", name, s.CPU.Err, detect.ErrTooShort)
		}
	}
}

// TestNewHostRefusesEmptyProcFS: a --path.procfs with no procfs in it is
// refused when the host is opened, not probed into an empty report.
func TestNewHostRefusesEmptyProcFS(t *testing.T) {
	empty := t.TempDir()
	garbled := t.TempDir()
	if err := os.WriteFile(filepath.Join(garbled, "stat"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"empty": empty, "garbled": garbled, "missing": filepath.Join(empty, "nope")} {
		_, err := NewHost(Paths{ProcFS: dir, SysFS: dir, RootFS: dir}, nil, nil)
		if !errors.Is(err, ErrNoProcFS) {
			t.Errorf("%s procfs: NewHost error %v, want %v", name, err, ErrNoProcFS)
		}
	}
}

func TestCountersValid(t *testing.T) {
	s := rates(procTree(t, counterFiles))
	for name, err := range map[string]detect.Err{"cpu": s.CPU.Err, "softirq": s.CPU.SoftirqErr, "softnet": s.Softnet.Err, "conntrack": s.Conntrack.StatErr, "udp": s.UDP.Err} {
		if err.Failed() {
			t.Errorf("%s: %v", name, err)
		}
	}
	if s.Softnet.Totals.Dropped != 1 || s.Conntrack.Totals.InsertFailed != 3 || s.UDP.InCsumErrors != 7 {
		t.Errorf("totals: softnet %+v conntrack %+v udp %d", s.Softnet.Totals, s.Conntrack.Totals, s.UDP.InCsumErrors)
	}
}

// TestCountersMalformed truncates and garbles each counter file in turn:
// the part it feeds must carry a clear error, and the others must not.
func TestCountersMalformed(t *testing.T) {
	part := map[string]func(s *detect.Snapshot) detect.Err{
		"stat":                  func(s *detect.Snapshot) detect.Err { return s.CPU.Err },
		"softirqs":              func(s *detect.Snapshot) detect.Err { return s.CPU.SoftirqErr },
		"net/softnet_stat":      func(s *detect.Snapshot) detect.Err { return s.Softnet.Err },
		"net/stat/nf_conntrack": func(s *detect.Snapshot) detect.Err { return s.Conntrack.StatErr },
		"1/net/snmp":            func(s *detect.Snapshot) detect.Err { return s.UDP.Err },
	}
	for file, get := range part {
		good := counterFiles[file]
		for variant, body := range map[string]string{
			"truncated": good[:len(good)/2],
			"garbage":   strings.Repeat("zz qq\n", 3),
			"missing":   "",
		} {
			t.Run(file+"/"+variant, func(t *testing.T) {
				files := map[string]string{}
				for k, v := range counterFiles {
					files[k] = v
				}
				if variant == "missing" {
					delete(files, file)
				} else {
					files[file] = body
				}
				s := rates(procTree(t, files))
				err := get(s)
				// Some truncations still parse (a softirqs file cut after a
				// whole row); those must then give sane values, not errors.
				if variant != "truncated" && !err.Failed() {
					t.Errorf("%s %s: no error recorded", file, variant)
				}
				if err.Failed() && !strings.Contains(err.Error(), "reading") {
					t.Errorf("error does not say what was read: %v", err)
				}
				if variant == "missing" && !errors.Is(err, detect.ErrGone) {
					t.Errorf("a missing file should be ErrGone: %v", err)
				}
				for other, g := range part {
					if other != file && g(s).Failed() {
						t.Errorf("%s broke %s too: %v", file, other, g(s))
					}
				}
			})
		}
	}
}

// FuzzCounters feeds arbitrary text to every counter file through procfs
// and the rate arithmetic: nothing may panic, and ratios stay in [0,1].
func FuzzCounters(f *testing.F) {
	f.Add(counterFiles["stat"], counterFiles["softirqs"], counterFiles["net/softnet_stat"], counterFiles["net/stat/nf_conntrack"], counterFiles["1/net/snmp"])
	f.Add("cpu0 1 2\n", "CPU0\nNET_RX: x\n", "0000\n", "entries\n1 2 3\n", "Udp: InCsumErrors\nUdp:\n")
	f.Fuzz(func(t *testing.T, stat, softirqs, softnet, ct, snmp string) {
		h := procTree(t, map[string]string{"stat": stat, "softirqs": softirqs, "net/softnet_stat": softnet, "net/stat/nf_conntrack": ct, "1/net/snmp": snmp})
		s := rates(h)
		for _, u := range append(s.CPU.PerCPU, s.CPU.Total) {
			for _, r := range []float64{u.Softirq, u.Steal, u.Idle} {
				if r < 0 || r > 1 || r != r {
					t.Fatalf("ratio %v out of [0,1] in %+v", r, u)
				}
			}
		}
	})
}

func FuzzSysctl(f *testing.F) {
	f.Add("1000\n")
	f.Add("-5")
	f.Add("1 2 3")
	f.Fuzz(func(t *testing.T, body string) {
		h := procTree(t, map[string]string{"sys/net/core/netdev_budget": body})
		if _, err := h.Sysctl("net.core.netdev_budget"); err != nil && !strings.Contains(err.Error(), "netdev_budget") {
			t.Fatalf("error does not name the key: %v", err)
		}
	})
}
