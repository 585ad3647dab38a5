package rules

import (
	"fmt"
	"strings"

	"github.com/nodetune/nodetune/detect"
)

func evalKubeProxyScale(s *detect.Snapshot, c Config, r *Result) {
	kp := s.KubeProxy
	if !kp.Running || kp.Mode != "iptables" {
		return
	}
	if kp.NATRules < 0 && kp.SyncSeconds < 0 {
		r.unchecked(KubeProxyIptablesScale, "kube-proxy", fmt.Errorf("kube-proxy runs in iptables mode but its metrics give neither rule counts nor sync times"))
		return
	}
	big := kp.NATRules >= c.KubeProxyNATRules
	slow := kp.SyncSeconds >= c.KubeProxySyncSeconds
	if !big && !slow {
		return
	}
	var why []string
	if big {
		why = append(why, fmt.Sprintf("%d nat rules", kp.NATRules))
	}
	if slow {
		why = append(why, fmt.Sprintf("%.2f s per rule sync", kp.SyncSeconds))
	}
	r.add(Finding{
		Rule:     KubeProxyIptablesScale,
		Severity: Warning,
		Subject:  "kube-proxy",
		Summary:  "kube-proxy runs in iptables mode with " + strings.Join(why, " and "),
		Explanation: "In iptables mode a new connection walks the Service chains rule by rule, and every change rewrites the " +
			"whole table. At thousands of Services, first-packet latency grows and rule syncs take seconds, during which " +
			"endpoint changes are not applied.",
		Evidence: []Evidence{{"mode", kp.Mode}, {"nat_rules", fmt.Sprint(kp.NATRules)}, {"sync_seconds_mean", fmt.Sprintf("%.3f", kp.SyncSeconds)}},
		Impact:   Impact{Summary: "slower new connections and stale Service endpoints during syncs"},
		Fix: Fix{
			Command: "kubectl -n kube-system edit configmap kube-proxy   # set mode: nftables (Kubernetes 1.31+) or ipvs",
			Manual:  "switch kube-proxy to nftables or IPVS mode cluster-wide, then restart its pods",
		},
		References: []string{
			"https://kubernetes.io/docs/reference/networking/virtual-ips/",
			"https://kubernetes.io/blog/2025/02/28/nftables-kube-proxy/",
		},
	})
}

func evalIPVSModules(s *detect.Snapshot, c Config, r *Result) {
	kp := s.KubeProxy
	if !kp.Running || kp.Mode != "ipvs" {
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
	r.add(Finding{
		Rule:     IPVSModulesMissing,
		Severity: Critical,
		Subject:  "kube-proxy",
		Summary:  "kube-proxy runs in IPVS mode but these modules are not loaded: " + strings.Join(missing, ", "),
		Explanation: "IPVS mode balances Services with the kernel's ip_vs hash tables and its schedulers. Without the modules " +
			"kube-proxy cannot program virtual servers for the missing schedulers, and Services that use them do not work.",
		Evidence: []Evidence{{"mode", kp.Mode}, {"missing", strings.Join(missing, ",")}},
		Impact:   Impact{Summary: "Services may not be reachable from this node"},
		Fix:      Fix{Command: commands(changes), Auto: true, Changes: changes},
		References: []string{
			"https://github.com/kubernetes/kubernetes/blob/master/pkg/proxy/ipvs/README.md",
		},
	})
}
