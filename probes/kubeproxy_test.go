package probes

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestKubeProxyProbe(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/proxyMode", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("iptables")) })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("kubeproxy_sync_proxy_rules_iptables_total{table=\"nat\"} 77\n"))
	})
	running := httptest.NewServer(mux)
	defer running.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }))
	defer broken.Close()
	missing := httptest.NewServer(http.NotFoundHandler())
	defer missing.Close()
	// kube-proxy never redirects; whatever answers its port with a
	// redirect is not it, and nodetune asks nowhere else.
	redirects := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, running.URL+r.URL.Path, http.StatusFound)
	}))
	defer redirects.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	for _, tt := range []struct {
		name, url       string
		running, failed bool
		mode            string
		rules           int64
	}{
		{"answers", running.URL, true, false, "iptables", 77},
		{"nothing listens", closed, false, false, "", -1},
		{"not kube-proxy", missing.URL, false, false, "", -1},
		{"server error", broken.URL, false, true, "", -1},
		{"redirects elsewhere", redirects.URL, false, true, "", -1},
		{"disabled", "", false, false, "", -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := procTree(t, nil)
			h.KubeProxyURL = tt.url
			kp := h.KubeProxy()
			if kp.Running != tt.running || kp.Err.Failed() != tt.failed || kp.Mode != tt.mode || kp.NATRules != tt.rules {
				t.Errorf("got %+v", kp)
			}
		})
	}
}

// TestKubeProxySyncMeanCoversTheInterval: one slow sync when kube-proxy
// started must not mark it slow for the rest of its life.
func TestKubeProxySyncMeanCoversTheInterval(t *testing.T) {
	var count, sum float64
	mux := http.NewServeMux()
	mux.HandleFunc("/proxyMode", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("iptables")) })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram\n"+
			"kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"+Inf\"} %v\n"+
			"kubeproxy_sync_proxy_rules_duration_seconds_sum %v\n"+
			"kubeproxy_sync_proxy_rules_duration_seconds_count %v\n", count, sum, count)
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
		count, sum, want float64
	}{
		{1, 30, 30},      // first snapshot: kube-proxy's life, one slow start-up sync
		{11, 30.5, 0.05}, // ten fast syncs since
		{11, 30.5, 0.05}, // none since: the last measured mean stands
		{12, 32.5, 2},    // one slow sync now
	} {
		count, sum = step.count, step.sum
		s, err := p.Snapshot(context.Background(), time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.KubeProxy.SyncSeconds; math.Abs(got-step.want) > 1e-9 {
			t.Errorf("after %v syncs in %v s: mean %v, want %v", step.count, step.sum, got, step.want)
		}
	}
}
