package rules

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/nodetune/nodetune/detect"
)

// Config holds the thresholds users may tune.
type Config struct {
	ConntrackWarn     float64 // usage ratio for a warning
	ConntrackCritical float64 // usage ratio for critical
	StealWarn         float64 // steal ratio of all CPU time for a warning
	StealCritical     float64
	// SoftirqBusy is the softirq ratio at which one CPU counts as saturated.
	SoftirqBusy float64
	// KubeProxyNATRules is the nat rule count past which iptables mode
	// is judged not to scale.
	KubeProxyNATRules int64
	// KubeProxySyncSeconds is the mean sync time past which it is judged so.
	KubeProxySyncSeconds float64
	// MeasuredLoss, when set, replaces the published estimate of what tx
	// checksum offload being off costs, with a figure measured on this node.
	MeasuredLoss float64
}

// DefaultConfig is the configuration doctor and serve start from.
func DefaultConfig() Config {
	return Config{
		ConntrackWarn:        0.80,
		ConntrackCritical:    0.95,
		StealWarn:            0.10,
		StealCritical:        0.25,
		SoftirqBusy:          0.80,
		KubeProxyNATRules:    20000,
		KubeProxySyncSeconds: 1.0,
	}
}

// Validate checks that every threshold is a finite number in range and that
// each warning comes before its critical level. NaN and the infinities are
// refused: NaN compares false with every bound, so it would pass a range
// check and then make every comparison in the rules false.
func (c Config) Validate() error {
	finite := []struct {
		flag string
		v    float64
	}{
		{"--conntrack.warn", c.ConntrackWarn}, {"--conntrack.critical", c.ConntrackCritical},
		{"--steal.warn", c.StealWarn}, {"--steal.critical", c.StealCritical}, {"--softirq.busy", c.SoftirqBusy},
		{"--kube-proxy.sync-seconds", c.KubeProxySyncSeconds}, {"the measured loss", c.MeasuredLoss},
	}
	for _, f := range finite {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("%s is %v; want a finite number", f.flag, f.v)
		}
	}
	ratios := []struct {
		flag string
		v    float64
	}{
		{"conntrack.warn", c.ConntrackWarn}, {"conntrack.critical", c.ConntrackCritical},
		{"steal.warn", c.StealWarn}, {"steal.critical", c.StealCritical}, {"softirq.busy", c.SoftirqBusy},
	}
	for _, r := range ratios {
		if r.v <= 0 || r.v > 1 {
			return fmt.Errorf("--%s is %v; want a ratio in (0,1]", r.flag, r.v)
		}
	}
	switch {
	case c.ConntrackWarn > c.ConntrackCritical:
		return fmt.Errorf("--conntrack.warn (%v) is above --conntrack.critical (%v)", c.ConntrackWarn, c.ConntrackCritical)
	case c.StealWarn > c.StealCritical:
		return fmt.Errorf("--steal.warn (%v) is above --steal.critical (%v)", c.StealWarn, c.StealCritical)
	case c.KubeProxyNATRules <= 0 || c.KubeProxySyncSeconds <= 0:
		return fmt.Errorf("--kube-proxy.nat-rules and --kube-proxy.sync-seconds must be positive")
	case c.MeasuredLoss < 0 || c.MeasuredLoss > 1:
		return fmt.Errorf("measured loss %v is not a ratio", c.MeasuredLoss)
	}
	return nil
}

// Result is what the catalog concludes about a snapshot.
type Result struct {
	Findings  []Finding   `json:"findings"`
	Unchecked []Unchecked `json:"unchecked"`
}

// Rule is one entry of the catalog.
type Rule struct {
	// ID is stable and kebab-case; users alert on it.
	ID string
	// Title is a short name for the rule.
	Title string
	// Auto reports whether findings of this rule can be fixed by nodetune.
	Auto bool
	eval func(s *detect.Snapshot, c Config, r *Result)
}

// Catalog returns every rule, in documentation order.
func Catalog() []Rule {
	return []Rule{
		{ID: TunnelTxChecksumOff, Title: "Tunnel tx checksum offload is off", Auto: true, eval: evalChecksumOff},
		{ID: TunnelTxChecksumUnsafe, Title: "Tunnel tx checksum offload is on where it corrupts packets", Auto: true, eval: evalChecksumUnsafe},
		{ID: TunnelOffloadHurts, Title: "Tunnel tx checksum offload measured slower on than off", eval: evalOffloadHurts},
		{ID: UDPChecksumErrors, Title: "UDP packets with bad checksums that are not a tunnel's", eval: evalUDPChecksumErrors},
		{ID: CNIOwnsOffload, Title: "The CNI manages tunnel offload and reverts changes", eval: evalCNIOwnsOffload},
		{ID: TunnelMTUMismatch, Title: "Tunnel MTU too large for its underlay", eval: evalMTU},
		{ID: CPUStealHigh, Title: "The hypervisor steals CPU time", eval: evalSteal},
		{ID: SoftirqSaturated, Title: "One CPU saturated by softirq", Auto: true, eval: evalSoftirq},
		{ID: SoftnetDrops, Title: "Packets dropped or squeezed in the softnet backlog", Auto: true, eval: evalSoftnet},
		{ID: ConntrackNearFull, Title: "Conntrack table near full", Auto: true, eval: evalConntrackFull},
		{ID: ConntrackInsertFailed, Title: "Conntrack inserts failing (DNS races before Linux 5.6, SNAT clashes after)", eval: evalInsertFailed},
		{ID: KubeProxyIptablesScale, Title: "kube-proxy iptables mode at a scale it handles badly", eval: evalKubeProxyScale},
		{ID: KubeProxyNFTablesSync, Title: "kube-proxy nftables mode with slow or failing rule syncs", eval: evalNFTablesSync},
		{ID: IPVSModulesMissing, Title: "kube-proxy IPVS mode without its kernel modules", Auto: true, eval: evalIPVSModules},
		{ID: KubeProxyIPVSDeprecated, Title: "kube-proxy in IPVS mode, deprecated since Kubernetes 1.35", eval: evalIPVSDeprecated},
		{ID: IPVSConnReuse, Title: "kube-proxy IPVS mode on a kernel before the conn_reuse_mode fixes", eval: evalIPVSConnReuse},
	}
}

// Rule IDs. They are part of nodetune's interface: never rename one.
const (
	TunnelTxChecksumOff     = "tunnel-tx-checksum-off"
	TunnelTxChecksumUnsafe  = "tunnel-tx-checksum-unsafe"
	CNIOwnsOffload          = "cni-owns-offload"
	UDPChecksumErrors       = "udp-checksum-errors"
	TunnelMTUMismatch       = "tunnel-mtu-mismatch"
	CPUStealHigh            = "cpu-steal-high"
	SoftirqSaturated        = "softirq-saturated"
	SoftnetDrops            = "softnet-drops"
	ConntrackNearFull       = "conntrack-near-full"
	ConntrackInsertFailed   = "conntrack-insert-failed"
	KubeProxyIptablesScale  = "kube-proxy-iptables-scale"
	IPVSModulesMissing      = "ipvs-modules-missing"
	KubeProxyNFTablesSync   = "kube-proxy-nftables-sync"
	KubeProxyIPVSDeprecated = "kube-proxy-ipvs-deprecated"
	IPVSConnReuse           = "ipvs-conn-reuse-mode"
)

// Evaluate runs every rule over s. Findings come most severe first, then
// by rule and subject, so the order is stable.
func Evaluate(s *detect.Snapshot, c Config) Result {
	r := Result{Findings: []Finding{}, Unchecked: []Unchecked{}}
	for _, rule := range Catalog() {
		rule.eval(s, c, &r)
	}
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Subject, b.Subject))
	})
	return r
}

// Worst returns the highest severity among findings, and false if none.
func Worst(findings []Finding) (Severity, bool) {
	if len(findings) == 0 {
		return Info, false
	}
	w := Info
	for _, f := range findings {
		w = max(w, f.Severity)
	}
	return w, true
}

func (r *Result) add(f Finding) { r.Findings = append(r.Findings, f) }

func (r *Result) unchecked(rule, subject string, err error) {
	r.Unchecked = append(r.Unchecked, Unchecked{Rule: rule, Subject: subject, Reason: err.Error()})
}
