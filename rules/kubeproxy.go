package rules

import (
	"fmt"
	"strings"

	"github.com/nodetune/nodetune/detect"
)

const nftablesModeAdvice = "switch kube-proxy to nftables mode (GA in Kubernetes 1.33; IPVS mode is deprecated since 1.35) cluster-wide, then restart its pods"

var kubeProxyModeReferences = []string{
	"https://kubernetes.io/docs/reference/networking/virtual-ips/",
	"https://kubernetes.io/blog/2025/02/28/nftables-kube-proxy/",
}

// syncEvidence returns the sync time rules judge kube-proxy by: the mean
// of its full syncs where kube-proxy reports them (1.28+), since a mean
// over all syncs hides slow full syncs among fast partial ones; else the
// mean over all syncs. The name says which; seconds is -1 when neither.
func syncEvidence(kp detect.KubeProxy) (name string, seconds float64) {
	if kp.FullSyncs.Count > 0 && kp.FullSyncSeconds >= 0 {
		return "full_sync_seconds_mean", kp.FullSyncSeconds
	}
	return "sync_seconds_mean", kp.SyncSeconds
}

func versionEvidence(kp detect.KubeProxy) Evidence {
	return Evidence{"kube_proxy_version", kp.Version.String()}
}

func evalKubeProxyScale(s *detect.Snapshot, c Config, r *Result) {
	kp := s.KubeProxy
	if !kp.Running || kp.Mode != "iptables" {
		return
	}
	syncName, syncSeconds := syncEvidence(kp)
	if kp.NATRules < 0 && syncSeconds < 0 {
		r.unchecked(KubeProxyIptablesScale, "kube-proxy", fmt.Errorf("kube-proxy runs in iptables mode but its metrics give neither rule counts nor sync times"))
		return
	}
	big := kp.NATRules >= c.KubeProxyNATRules
	slow := syncSeconds >= c.KubeProxySyncSeconds
	if !big && !slow {
		return
	}
	var why []string
	if big {
		why = append(why, fmt.Sprintf("%d nat rules", kp.NATRules))
	}
	if slow {
		kind := "rule sync"
		if syncName == "full_sync_seconds_mean" {
			kind = "full rule sync"
		}
		why = append(why, fmt.Sprintf("%.2f s per %s", syncSeconds, kind))
	}
	r.add(Finding{
		Rule:     KubeProxyIptablesScale,
		Severity: Warning,
		Subject:  "kube-proxy",
		Summary:  "kube-proxy runs in iptables mode with " + strings.Join(why, " and "),
		Explanation: "In iptables mode a new connection walks the Service chains rule by rule, and every change rewrites the " +
			"whole table. At thousands of Services, first-packet latency grows and rule syncs take seconds, during which " +
			"endpoint changes are not applied. nftables mode looks Services up in maps and updates only what changed.",
		Evidence: []Evidence{{"mode", kp.Mode}, {"nat_rules", fmt.Sprint(kp.NATRules)}, {syncName, fmt.Sprintf("%.3f", syncSeconds)}, versionEvidence(kp)},
		Impact:   Impact{Summary: "slower new connections and stale Service endpoints during syncs"},
		Fix: Fix{
			Command: "kubectl -n kube-system edit configmap kube-proxy   # set mode: nftables",
			Manual:  nftablesModeAdvice,
		},
		References: kubeProxyModeReferences,
	})
}

func evalNFTablesSync(s *detect.Snapshot, c Config, r *Result) {
	kp := s.KubeProxy
	if !kp.Running || kp.Mode != "nftables" {
		return
	}
	if kp.NFTablesSyncFailuresDelta > 0 {
		r.add(Finding{
			Rule:     KubeProxyNFTablesSync,
			Severity: Warning,
			Subject:  "kube-proxy",
			Summary:  fmt.Sprintf("kube-proxy's nftables rule syncs failed %d times since the previous snapshot", kp.NFTablesSyncFailuresDelta),
			Explanation: "A failed sync leaves the node's Service rules as they were: endpoint changes are not applied until a " +
				"later sync succeeds. kube-proxy logs why (nft's error).",
			Evidence: []Evidence{{"mode", kp.Mode}, {"nftables_sync_failures_delta", fmt.Sprint(kp.NFTablesSyncFailuresDelta)},
				{"nftables_sync_failures_total", fmt.Sprint(kp.NFTablesSyncFailures)}, versionEvidence(kp)},
			Impact: Impact{Summary: "stale Service endpoints on this node"},
			Fix: Fix{
				Command: "kubectl -n kube-system logs -l k8s-app=kube-proxy | grep -i nft",
				Manual:  "read kube-proxy's log for nft's error (a missing kernel feature, or another program holding its table)",
			},
			References: kubeProxyModeReferences,
		})
	}
	syncName, syncSeconds := syncEvidence(kp)
	if syncSeconds < 0 {
		r.unchecked(KubeProxyNFTablesSync, "kube-proxy", fmt.Errorf("kube-proxy runs in nftables mode but its metrics give no sync times"))
		return
	}
	if syncSeconds < c.KubeProxySyncSeconds {
		return
	}
	r.add(Finding{
		Rule:     KubeProxyNFTablesSync,
		Severity: Warning,
		Subject:  "kube-proxy",
		Summary:  fmt.Sprintf("kube-proxy's nftables rule syncs take %.2f s on average", syncSeconds),
		Explanation: "In nftables mode kube-proxy rewrites only what changed in its partial syncs, and rebuilds its whole table " +
			"in a full sync (at start and every syncPeriod). While a sync runs, endpoint changes wait; a full sync this slow " +
			"means a very large number of Services and endpoints, or a slow nft on this node.",
		Evidence: []Evidence{{"mode", kp.Mode}, {syncName, fmt.Sprintf("%.3f", syncSeconds)}, versionEvidence(kp)},
		Impact:   Impact{Summary: "Service endpoint changes applied late on this node"},
		Fix: Fix{
			Command: "kubectl -n kube-system logs -l k8s-app=kube-proxy | grep -i sync",
			Manual:  "look at what kube-proxy syncs (Service and endpoint counts) and at nft's own cost on this node; a longer minSyncPeriod batches changes",
		},
		References: kubeProxyModeReferences,
	})
}

func evalIPVSModules(s *detect.Snapshot, c Config, r *Result) {
	kp := s.KubeProxy
	if !kp.Running || kp.Mode != "ipvs" {
		return
	}
	if kp.Version.AtLeast(detect.IPVSModulesFrom.Major, detect.IPVSModulesFrom.Minor) {
		// It answered ipvs on /proxyMode, so IPVS works: since 1.27 it
		// checks no modules and the kernel loads ip_vs_<scheduler> itself.
		return
	}
	if kp.ModulesErr.Failed() {
		r.unchecked(IPVSModulesMissing, "kube-proxy", kp.ModulesErr)
		return
	}
	var changes []Change
	for _, m := range detect.IPVSModuleNames {
		if !kp.IPVSModules[m] {
			changes = append(changes, Change{Kind: ChangeModule, Target: m, Value: "loaded"})
		}
	}
	if len(changes) == 0 {
		return
	}
	missing := make([]string, len(changes))
	for i, ch := range changes {
		missing[i] = ch.Target
	}
	f := Finding{
		Rule:    IPVSModulesMissing,
		Subject: "kube-proxy",
		Evidence: []Evidence{
			{"mode", kp.Mode}, {"missing", strings.Join(missing, ",")}, versionEvidence(kp),
		},
		References: []string{
			"https://github.com/kubernetes/kubernetes/blob/master/pkg/proxy/ipvs/README.md",
			"https://github.com/kubernetes/kubernetes/pull/114669",
		},
	}
	if !kp.Version.Known() {
		f.Severity = Info
		f.Summary = "kube-proxy runs in IPVS mode, these modules are not loaded, and its version is unknown: " + strings.Join(missing, ", ")
		f.Explanation = "Before 1.27 kube-proxy needed ip_vs, ip_vs_rr, ip_vs_wrr and ip_vs_sh loaded. From 1.27 it checks no " +
			"modules: the kernel loads ip_vs_<scheduler> when a virtual server asks for it, and a kube-proxy that answers ipvs " +
			"has a working IPVS. Without kube-proxy's version nodetune cannot tell which applies, so it loads nothing."
		f.Impact = Impact{Summary: "none if kube-proxy is 1.27 or later; Services may not be reachable if it is older"}
		settle := "what would settle it: kube-proxy's version (kubernetes_build_info on its metrics port, or kube-proxy --version); " +
			"load the modules only for a kube-proxy older than 1.27"
		if kp.VersionErr.Failed() {
			settle += " (version unread: " + kp.VersionErr.Error() + ")"
		}
		f.Fix = Fix{Command: commands(changes), Manual: settle}
		r.add(f)
		return
	}
	f.Severity = Critical
	f.Summary = fmt.Sprintf("kube-proxy %s runs in IPVS mode but these modules are not loaded: %s", kp.Version, strings.Join(missing, ", "))
	f.Explanation = "kube-proxy before 1.27 balances Services with the kernel's ip_vs tables and checks for ip_vs, ip_vs_rr, " +
		"ip_vs_wrr and ip_vs_sh. Without them it cannot program virtual servers for the missing schedulers, and Services " +
		"that use them do not work."
	f.Impact = Impact{Summary: "Services may not be reachable from this node"}
	f.Fix = Fix{Command: commands(changes), Auto: true, Changes: changes}
	r.add(f)
}

func evalIPVSDeprecated(s *detect.Snapshot, c Config, r *Result) {
	kp := s.KubeProxy
	if !kp.Running || kp.Mode != "ipvs" || !kp.Version.AtLeast(detect.IPVSDeprecatedFrom.Major, detect.IPVSDeprecatedFrom.Minor) {
		return
	}
	r.add(Finding{
		Rule:     KubeProxyIPVSDeprecated,
		Severity: Info,
		Subject:  "kube-proxy",
		Summary:  fmt.Sprintf("kube-proxy %s runs in IPVS mode, which is deprecated since Kubernetes 1.35", kp.Version),
		Explanation: "IPVS mode is deprecated in favour of nftables mode, which scales to large numbers of Services with " +
			"map lookups and incremental updates and is where kube-proxy's development goes.",
		Evidence:   []Evidence{{"mode", kp.Mode}, versionEvidence(kp)},
		Impact:     Impact{Summary: "no loss today; IPVS mode will be removed in a later release"},
		Fix:        Fix{Command: "kubectl -n kube-system edit configmap kube-proxy   # set mode: nftables", Manual: nftablesModeAdvice},
		References: []string{"https://github.com/kubernetes/kubernetes/issues/134539"},
	})
}

// connReuseFixed is the first mainline kernel whose IPVS neither drops the
// first packet of a reused connection nor keeps sending a reused source
// port to a deleted real server (kubernetes issue 93297).
var connReuseFixed = detect.Version{Major: 5, Minor: 9}

func evalIPVSConnReuse(s *detect.Snapshot, c Config, r *Result) {
	kp := s.KubeProxy
	if !kp.Running || kp.Mode != "ipvs" {
		return
	}
	if s.Kernel.Err.Failed() {
		r.unchecked(IPVSConnReuse, "kube-proxy", s.Kernel.Err)
		return
	}
	v := s.Kernel.Version
	if !v.Less(connReuseFixed) {
		return
	}
	ev := []Evidence{{"mode", kp.Mode}, {"kernel", s.Kernel.Release}}
	if kp.ConnReuseMode >= 0 {
		ev = append(ev, Evidence{"net.ipv4.vs.conn_reuse_mode", fmt.Sprint(kp.ConnReuseMode)})
	}
	explanation := "Before Linux 5.9, IPVS either drops the first packet of a connection that reuses a recent source port " +
		"(conn_reuse_mode=1: a 1 s delay, seen as low throughput under load) or keeps sending a reused source port to the old " +
		"backend (conn_reuse_mode=0, which kube-proxy sets on these kernels: requests fail during rollouts)."
	if v.Distribution() {
		explanation += " This is a distribution kernel, which may carry the 5.9 fixes; what would settle it is its changelog."
	}
	r.add(Finding{
		Rule:        IPVSConnReuse,
		Severity:    Warning,
		Subject:     "kube-proxy",
		Summary:     fmt.Sprintf("kube-proxy runs in IPVS mode on kernel %s, before the conn_reuse_mode fixes of Linux 5.9", s.Kernel.Release),
		Explanation: explanation,
		Evidence:    ev,
		Impact:      Impact{Summary: "1 s connection delays or failed requests while Services' pods roll"},
		Fix: Fix{
			Command: "uname -r   # move the node to Linux 5.9 or later",
			Manual:  "upgrade the kernel to 5.9 or later (kube-proxy then leaves conn_reuse_mode at 1), or " + nftablesModeAdvice,
		},
		References: []string{
			"https://github.com/kubernetes/kubernetes/issues/93297",
			"https://github.com/kubernetes/kubernetes/issues/81775",
			"https://github.com/kubernetes/kubernetes/pull/102122",
		},
	})
}
