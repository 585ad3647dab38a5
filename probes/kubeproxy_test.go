package probes

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
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
