package rules

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
)

func kubeVersion(t *testing.T, git string) detect.KubeVersion {
	t.Helper()
	v, err := detect.ParseKubeVersion(git)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestKubeProxyAsItIsToday: each kube-proxy class gets the verdict its
// version and metrics support, and only evidence about kube-proxy itself
// makes a finding automatic.
func TestKubeProxyAsItIsToday(t *testing.T) {
	onlyIPVS := map[string]bool{"ip_vs": true}
	tests := []struct {
		name      string
		kernel    string
		kp        func(t *testing.T) detect.KubeProxy
		want      []string
		unchecked []string
	}{
		{
			name:   "working IPVS node, kube-proxy 1.30, scheduler rr: no module finding",
			kernel: "6.1.0",
			kp: func(t *testing.T) detect.KubeProxy {
				return detect.KubeProxy{Running: true, Mode: "ipvs", Version: kubeVersion(t, "v1.30.4"), IPVSModules: onlyIPVS,
					Config: &detect.KubeProxyConfig{Mode: "ipvs", IPVSScheduler: "rr"}}
			},
		},
		{
			name:   "IPVS, kube-proxy 1.26 without its modules: critical and automatic",
			kernel: "6.1.0",
			kp: func(t *testing.T) detect.KubeProxy {
				return detect.KubeProxy{Running: true, Mode: "ipvs", Version: kubeVersion(t, "v1.26.9"), IPVSModules: onlyIPVS}
			},
			want: []string{"ipvs-modules-missing kube-proxy critical auto=true"},
		},
		{
			name:   "IPVS, unknown version: not old, not automatic",
			kernel: "6.1.0",
			kp: func(t *testing.T) detect.KubeProxy {
				return detect.KubeProxy{Running: true, Mode: "ipvs", IPVSModules: onlyIPVS}
			},
			want: []string{"ipvs-modules-missing kube-proxy info auto=false"},
		},
		{
			name:   "IPVS on 1.35: deprecated, nftables is the advice",
			kernel: "6.1.0",
			kp: func(t *testing.T) detect.KubeProxy {
				return detect.KubeProxy{Running: true, Mode: "ipvs", Version: kubeVersion(t, "v1.35.0")}
			},
			want: []string{"kube-proxy-ipvs-deprecated kube-proxy info auto=false"},
		},
		{
			name:   "IPVS on a kernel before 5.9: the conn_reuse_mode pitfall",
			kernel: "5.4.0-150-generic",
			kp: func(t *testing.T) detect.KubeProxy {
				return detect.KubeProxy{Running: true, Mode: "ipvs", Version: kubeVersion(t, "v1.30.4"), ConnReuseMode: 0}
			},
			want: []string{"ipvs-conn-reuse-mode kube-proxy warning auto=false"},
		},
		{
			name:   "IPVS on 5.9",
			kernel: "5.9.1",
			kp: func(t *testing.T) detect.KubeProxy {
				return detect.KubeProxy{Running: true, Mode: "ipvs", Version: kubeVersion(t, "v1.30.4"), ConnReuseMode: 1}
			},
		},
		{
			name:   "iptables: fast partial syncs hide slow full syncs",
			kernel: "6.1.0",
			kp: func(t *testing.T) detect.KubeProxy {
				return detect.KubeProxy{Running: true, Mode: "iptables", Version: kubeVersion(t, "v1.30.4"), NATRules: 900,
					SyncSeconds: 0.1, Syncs: detect.SyncHistogram{Count: 100, SumSeconds: 10},
					FullSyncSeconds: 3.5, FullSyncs: detect.SyncHistogram{Count: 2, SumSeconds: 7}}
			},
			want: []string{"kube-proxy-iptables-scale kube-proxy warning auto=false"},
		},
		{
			name:   "nftables with slow full syncs",
			kernel: "6.1.0",
			kp: func(t *testing.T) detect.KubeProxy {
				return detect.KubeProxy{Running: true, Mode: "nftables", Version: kubeVersion(t, "v1.33.1"), NATRules: -1,
					SyncSeconds: 0.2, FullSyncSeconds: 2.5, FullSyncs: detect.SyncHistogram{Count: 4, SumSeconds: 10}}
			},
			want: []string{"kube-proxy-nftables-sync kube-proxy warning auto=false"},
		},
		{
			name:   "nftables syncs failing since the previous snapshot",
			kernel: "6.1.0",
			kp: func(t *testing.T) detect.KubeProxy {
				return detect.KubeProxy{Running: true, Mode: "nftables", Version: kubeVersion(t, "v1.33.1"), NATRules: -1,
					SyncSeconds: 0.02, NFTablesSyncFailures: 9, NFTablesSyncFailuresDelta: 2}
			},
			want: []string{"kube-proxy-nftables-sync kube-proxy warning auto=false"},
		},
		{
			name:   "nftables failures since start, no interval yet",
			kernel: "6.1.0",
			kp: func(t *testing.T) detect.KubeProxy {
				return detect.KubeProxy{Running: true, Mode: "nftables", Version: kubeVersion(t, "v1.33.1"), NATRules: -1,
					SyncSeconds: 0.02, NFTablesSyncFailures: 9, NFTablesSyncFailuresDelta: -1}
			},
		},
		{
			name:   "nftables, fast",
			kernel: "6.1.0",
			kp: func(t *testing.T) detect.KubeProxy {
				return detect.KubeProxy{Running: true, Mode: "nftables", Version: kubeVersion(t, "v1.33.1"), NATRules: -1,
					SyncSeconds: 0.02, FullSyncSeconds: 0.1, FullSyncs: detect.SyncHistogram{Count: 4, SumSeconds: 0.4}}
			},
		},
		{
			name:   "nftables without sync metrics",
			kernel: "6.1.0",
			kp: func(t *testing.T) detect.KubeProxy {
				return detect.KubeProxy{Running: true, Mode: "nftables", NATRules: -1, SyncSeconds: -1, FullSyncSeconds: -1}
			},
			unchecked: []string{"kube-proxy-nftables-sync"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := node(tt.kernel)
			s.KubeProxy = tt.kp(t)
			r := Evaluate(s, DefaultConfig())
			if diff := cmp.Diff(tt.want, fired(r)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.unchecked, uncheckedRules(r)); diff != "" {
				t.Errorf("unchecked (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKubeProxyScaleAdvisesNFTables: IPVS is deprecated, so the advice
// for iptables mode at scale is nftables mode alone.
func TestKubeProxyScaleAdvisesNFTables(t *testing.T) {
	s := node("6.1.0")
	s.KubeProxy = detect.KubeProxy{Running: true, Mode: "iptables", NATRules: 30000, SyncSeconds: 0.2}
	r := Evaluate(s, DefaultConfig())
	if len(r.Findings) != 1 {
		t.Fatalf("got %v", fired(r))
	}
	fix := r.Findings[0].Fix.Command + " " + r.Findings[0].Fix.Manual
	if !strings.Contains(fix, "nftables") || strings.Contains(fix, "or ipvs") {
		t.Errorf("fix %q should advise nftables mode only", fix)
	}
}

// TestUnknownKubeProxyVersionSaysWhatSettlesIt: an unknown version is not
// taken for an old one.
func TestUnknownKubeProxyVersionSaysWhatSettlesIt(t *testing.T) {
	s := node("6.1.0")
	s.KubeProxy = detect.KubeProxy{Running: true, Mode: "ipvs", IPVSModules: map[string]bool{}}
	r := Evaluate(s, DefaultConfig())
	if len(r.Findings) != 1 || !strings.Contains(r.Findings[0].Fix.Manual, "kubernetes_build_info") {
		t.Errorf("got %+v", r.Findings)
	}
}
