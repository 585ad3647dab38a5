package probes

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
)

const kubeProxy130 = `# HELP kubernetes_build_info [ALPHA] A metric with a constant '1' value labeled by major, minor, git version, git commit, git tree state, build date, Go version, and compiler from which Kubernetes was built, and platform on which it is running.
# TYPE kubernetes_build_info gauge
kubernetes_build_info{build_date="2024-08-14T00:00:00Z",compiler="gc",git_commit="abc",git_tree_state="clean",git_version="v1.30.4",gitVersion="v1.30.4",go_version="go1.22.5",major="1",minor="30",platform="linux/amd64"} 1
# TYPE kubeproxy_sync_full_proxy_rules_duration_seconds histogram
kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{le="+Inf"} 4
kubeproxy_sync_full_proxy_rules_duration_seconds_sum 6
kubeproxy_sync_full_proxy_rules_duration_seconds_count 4
# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram
kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="+Inf"} 40
kubeproxy_sync_proxy_rules_duration_seconds_sum 8
kubeproxy_sync_proxy_rules_duration_seconds_count 40
`

func TestParseKubeProxyPage(t *testing.T) {
	got, err := ParseKubeProxyPage(strings.NewReader(kubeProxy130))
	if err != nil {
		t.Fatal(err)
	}
	want := KubeProxyMetrics{
		NATRules:   -1,
		Syncs:      detect.SyncHistogram{Count: 40, SumSeconds: 8},
		FullSyncs:  detect.SyncHistogram{Count: 4, SumSeconds: 6},
		GitVersion: "v1.30.4",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// configz130 is how kube-proxy 1.30 answers /configz: its internal
// configuration type, whose fields have no JSON names.
const configz130 = `{"kubeproxy.config.k8s.io":{"FeatureGates":{},"ClientConnection":{"Kubeconfig":"/var/lib/kube-proxy/kubeconfig"},"Mode":"ipvs","IPTables":{"MasqueradeBit":14},"IPVS":{"SyncPeriod":"30s","Scheduler":"","StrictARP":false},"Conntrack":{"MaxPerCore":32768,"Min":131072,"TCPEstablishedTimeout":"24h0m0s"}}}`

func TestParseKubeProxyConfigz(t *testing.T) {
	perCore, minimum := int32(32768), int32(131072)
	for _, tt := range []struct {
		name, body string
		want       detect.KubeProxyConfig
		ok         bool
	}{
		{"internal names", configz130, detect.KubeProxyConfig{Mode: "ipvs", ConntrackMaxPerCore: &perCore, ConntrackMin: &minimum}, true},
		{"versioned names", `{"kubeproxy.config.k8s.io":{"mode":"ipvs","ipvs":{"scheduler":"wrr"}}}`, detect.KubeProxyConfig{Mode: "ipvs", IPVSScheduler: "wrr"}, true},
		{"another component", `{"kubeletconfig":{}}`, detect.KubeProxyConfig{}, false},
		{"not JSON", `ipvs`, detect.KubeProxyConfig{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKubeProxyConfigz([]byte(tt.body))
			if (err == nil) != tt.ok {
				t.Fatalf("error %v, want ok=%v", err, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if s := (detect.KubeProxyConfig{}).Scheduler(); s != "rr" {
		t.Errorf("default scheduler %q, want rr", s)
	}
}

// TestKubeProxyProbeReadsVersionAndConfig: the probe reads the version
// from kubernetes_build_info and the configuration from /configz, and
// says why when kube-proxy has no build info.
func TestKubeProxyProbeReadsVersionAndConfig(t *testing.T) {
	serve := func(metrics string) *httptest.Server {
		mux := http.NewServeMux()
		mux.HandleFunc("/proxyMode", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ipvs")) })
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(metrics)) })
		mux.HandleFunc("/configz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(configz130)) })
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		return srv
	}
	h := procTree(t, nil)
	h.KubeProxyURL = serve(kubeProxy130).URL
	kp := h.KubeProxy()
	if kp.Version.Git != "v1.30.4" || kp.VersionErr.Failed() || kp.Config == nil || kp.Config.Mode != "ipvs" || kp.FullSyncSeconds != 1.5 {
		t.Errorf("got %+v", kp)
	}
	h.KubeProxyURL = serve("kubeproxy_sync_proxy_rules_iptables_total{table=\"nat\"} 7\n").URL
	kp = h.KubeProxy()
	if kp.Version.Known() || !kp.VersionErr.Failed() || kp.FullSyncSeconds != -1 {
		t.Errorf("without build info: got %+v", kp)
	}
}

func FuzzParseKubeProxyConfigz(f *testing.F) {
	f.Add(configz130)
	f.Add(`{"kubeproxy.config.k8s.io":null}`)
	f.Add(`{"kubeproxy.config.k8s.io":{"IPVS":[]}}`)
	f.Fuzz(func(t *testing.T, body string) {
		c, err := ParseKubeProxyConfigz([]byte(body))
		if err != nil && (c != detect.KubeProxyConfig{}) {
			t.Fatalf("error %v with a configuration %+v", err, c)
		}
	})
}

func FuzzParseKubeProxyPage(f *testing.F) {
	f.Add(kubeProxy130)
	f.Add("kubernetes_build_info{gitVersion=\"\"} 1\n")
	f.Fuzz(func(t *testing.T, page string) {
		m, err := ParseKubeProxyPage(strings.NewReader(page))
		if err != nil && m.GitVersion != "" {
			t.Fatalf("error %v with a version %q", err, m.GitVersion)
		}
		for _, h := range []detect.SyncHistogram{m.Syncs, m.FullSyncs} {
			if mean, ok := h.Mean(detect.SyncHistogram{}); ok && (mean < 0 || mean != mean) {
				t.Fatalf("mean %v from %+v", mean, h)
			}
		}
	})
}

// TestNFTablesSyncFailuresOverTheInterval: failed nftables syncs count
// from one snapshot to the next; a first snapshot has nothing to compare
// with, so its total since kube-proxy started is not taken as current.
func TestNFTablesSyncFailuresOverTheInterval(t *testing.T) {
	failures := 0
	mux := http.NewServeMux()
	mux.HandleFunc("/proxyMode", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("nftables")) })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE kubeproxy_sync_proxy_rules_nftables_sync_failures_total counter\n"+
			"kubeproxy_sync_proxy_rules_nftables_sync_failures_total{ip_family=\"IPv4\"} %d\n"+
			"kubeproxy_sync_proxy_rules_nftables_sync_failures_total{ip_family=\"IPv6\"} 1\n", failures)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	h := procTree(t, counterFiles)
	h.KubeProxyURL = srv.URL
	h.Netlink = &interrupting{}
	h.Ethtool = noFeatures{}
	p := NewProber(h)
	p.Baseline(h)
	for _, step := range []struct {
		failures  int
		wantTotal uint64
		wantDelta int64
	}{
		{40, 41, -1}, // first snapshot: no interval yet
		{40, 41, 0},
		{43, 44, 3},
	} {
		failures = step.failures
		s, err := p.Snapshot(context.Background(), time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if kp := s.KubeProxy; kp.NFTablesSyncFailures != step.wantTotal || kp.NFTablesSyncFailuresDelta != step.wantDelta {
			t.Errorf("at %d failures: total %d, delta %d; want %d, %d", step.failures, kp.NFTablesSyncFailures, kp.NFTablesSyncFailuresDelta, step.wantTotal, step.wantDelta)
		}
	}
}
