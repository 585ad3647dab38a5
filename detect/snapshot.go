package detect

import (
	"net/netip"
	"slices"
	"time"
)

// Snapshot is everything nodetune knows about a node at one moment. Probes
// fill it; rules judge it. Each part carries its own Err, so a part that
// could not be read says why instead of looking empty.
type Snapshot struct {
	// Taken is when the snapshot was completed.
	Taken time.Time `json:"taken"`
	// Window is the span over which rates and deltas were measured.
	Window time.Duration `json:"window_ns"`

	Kernel    Kernel    `json:"kernel"`
	Memory    Memory    `json:"memory"`
	Tunnels   Tunnels   `json:"tunnels"`
	PodPath   PodPath   `json:"pod_path"`
	NICs      NICs      `json:"nics"`
	CPU       CPU       `json:"cpu"`
	Softnet   Softnet   `json:"softnet"`
	Conntrack Conntrack `json:"conntrack"`
	UDP       UDP       `json:"udp"`
	KubeProxy KubeProxy `json:"kube_proxy"`
	Host      Host      `json:"host"`
	CNI       CNI       `json:"cni"`
	Ownership Ownership `json:"ownership"`
	// Peers are the last measurements between this node and others.
	Peers Peers `json:"peers,omitzero"`
	// Probes records how each probe went, for nodetune's own metrics.
	Probes []ProbeRun `json:"probes"`
}

// ProbeRun is how one probe went in the cycle that made a snapshot.
type ProbeRun struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
	Err      Err           `json:"error,omitzero"`
}

// Memory is the node's memory size, which bounds how far nodetune may raise
// table sizes.
type Memory struct {
	TotalBytes uint64 `json:"total_bytes"`
	Err        Err    `json:"error,omitzero"`
}

// Tunnels lists every encapsulating link in this network namespace.
type Tunnels struct {
	Devices []Tunnel `json:"devices"`
	// PeerMeasurement names the temporary tunnels of a peer measurement
	// running now (bench --peer, serve's responder), left out of Devices:
	// nothing judges or changes them.
	PeerMeasurement []string `json:"peer_measurement,omitempty"`
	Err             Err      `json:"error,omitzero"`
}

// Tunnel kinds, as netlink names them.
const (
	KindVXLAN  = "vxlan"
	KindGeneve = "geneve"
	KindIPIP   = "ipip"
)

// Tunnel is one encapsulating link and the device that carries it.
type Tunnel struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	Kind  string `json:"kind"`
	// VNI is the VXLAN or Geneve network identifier, 0 when the kind has none.
	VNI uint32 `json:"vni,omitempty"`
	// Port is the UDP destination port, 0 when the kind has none.
	Port int  `json:"port,omitempty"`
	MTU  int  `json:"mtu"`
	IPv6 bool `json:"ipv6,omitempty"`
	// Up reports whether the link is administratively up.
	Up       bool     `json:"up"`
	Features Features `json:"features"`
	// OuterChecksum is the UDP tunnel's outer checksum settings, nil for
	// IPIP or when netlink did not say.
	OuterChecksum *OuterChecksum `json:"outer_checksum,omitempty"`
	// Underlay is the device the encapsulated packets leave by, if known.
	Underlay *Underlay `json:"underlay,omitempty"`
	// Local is the outer source address the tunnel is bound to (VXLAN
	// "local"), invalid when it is not bound to one.
	Local netip.Addr `json:"local,omitzero"`
}

// Underlay is the physical (or veth) device beneath a tunnel.
type Underlay struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	MTU   int    `json:"mtu"`
	// Source says how the underlay was found: "link" when the tunnel names
	// it, "default-route" when it was inferred from the default route,
	// "default-route-v6" from the IPv6 one.
	Source   string   `json:"source"`
	Features Features `json:"features"`
	// RxQueues are the device's receive queues and their RPS CPU masks.
	RxQueues []RxQueue `json:"rx_queues,omitempty"`
	// Addrs are the device's global unicast addresses, the sources of an
	// unbound tunnel's packets; nil when they were not read (AddrsErr).
	Addrs    []netip.Addr `json:"addrs,omitempty"`
	AddrsErr Err          `json:"addrs_error,omitzero"`
}

// RxQueue is one receive queue of a device and its RPS setting.
type RxQueue struct {
	// Name is the queue's sysfs name, such as "rx-0".
	Name string `json:"name"`
	// RPSCPUs is the hex CPU mask in rps_cpus; all zeros means RPS is off.
	RPSCPUs string `json:"rps_cpus"`
}

// Features is the ethtool offload state of a device, by the names ethtool
// -k prints. Only the features nodetune reasons about are kept.
type Features struct {
	// State maps a feature name to whether it is active.
	State map[string]bool `json:"state,omitempty"`
	// Fixed lists features the driver does not let anyone change.
	Fixed []string `json:"fixed,omitempty"`
	Err   Err      `json:"error,omitzero"`
}

// ethtool feature names that nodetune reads.
const (
	FeatureTxChecksumGeneric = "tx-checksum-ip-generic"
	FeatureTSO               = "tx-tcp-segmentation"
	FeatureTSO6              = "tx-tcp6-segmentation"
	FeatureGSO               = "tx-generic-segmentation"
	FeatureUDPTunnelSeg      = "tx-udp_tnl-segmentation"
	FeatureGRO               = "rx-gro"
	FeatureUDPGROForwarding  = "rx-udp-gro-forwarding"
)

// WatchedFeatures are the ethtool features kept in a snapshot.
var WatchedFeatures = []string{
	FeatureTxChecksumGeneric,
	FeatureTSO,
	FeatureTSO6,
	FeatureGSO,
	FeatureUDPTunnelSeg,
	FeatureGRO,
	FeatureUDPGROForwarding,
}

// OnOff is how ethtool says a feature's state.
func OnOff(active bool) string {
	if active {
		return "on"
	}
	return "off"
}

// Has reports whether the device has feature at all, and its state.
func (f Features) Has(feature string) (on, present bool) {
	on, present = f.State[feature]
	return on, present
}

// IsFixed reports whether the driver refuses to change feature.
func (f Features) IsFixed(feature string) bool { return slices.Contains(f.Fixed, feature) }

// CPU is how each CPU spent the window.
type CPU struct {
	PerCPU []CPUUsage `json:"per_cpu"`
	// Total is the sum over all CPUs, as ratios of all CPU time.
	Total CPUUsage `json:"total"`
	Err   Err      `json:"error,omitzero"`
	// SoftirqErr is why per-CPU softirq counts are missing, if they are.
	SoftirqErr Err `json:"softirq_error,omitzero"`
}

// CPUUsage is one CPU's share of time over the window, each ratio in [0,1].
type CPUUsage struct {
	// CPU is the CPU number, or -1 for the total.
	CPU     int     `json:"cpu"`
	Softirq float64 `json:"softirq_ratio"`
	Steal   float64 `json:"steal_ratio"`
	Idle    float64 `json:"idle_ratio"`
	// NetRx and NetTx are NET_RX and NET_TX softirqs raised in the window.
	NetRx uint64 `json:"net_rx"`
	NetTx uint64 `json:"net_tx"`
}

// Softnet is the kernel's per-CPU backlog accounting, summed over CPUs.
type Softnet struct {
	// Totals are the counters since boot.
	Totals SoftnetCounters `json:"totals"`
	// Delta is how much each counter grew over the window.
	Delta SoftnetCounters `json:"delta"`
	// PerCPUProcessed is packets processed per CPU over the window.
	PerCPUProcessed []uint64 `json:"per_cpu_processed,omitempty"`
	Err             Err      `json:"error,omitzero"`
	// MaxBacklog and Budget are net.core.netdev_max_backlog and
	// net.core.netdev_budget, 0 when they could not be read.
	MaxBacklog int64 `json:"netdev_max_backlog"`
	Budget     int64 `json:"netdev_budget"`
}

// SoftnetCounters are the summed columns of /proc/net/softnet_stat.
type SoftnetCounters struct {
	Processed    uint64 `json:"processed"`
	Dropped      uint64 `json:"dropped"`
	TimeSqueezed uint64 `json:"time_squeezed"`
	FlowLimit    uint64 `json:"flow_limit"`
}

// Conntrack is the connection tracking table's fill and its failure counters.
type Conntrack struct {
	// Present is false where the kernel has no conntrack in this namespace.
	Present bool  `json:"present"`
	Count   int64 `json:"count"`
	Max     int64 `json:"max"`
	Err     Err   `json:"error,omitzero"`
	// Totals and Delta come from /proc/net/stat/nf_conntrack.
	Totals  ConntrackCounters `json:"totals"`
	Delta   ConntrackCounters `json:"delta"`
	StatErr Err               `json:"stat_error,omitzero"`
	// ClashCounted reports whether the kernel's stats have the
	// clash_resolve column (printed as "clashres").
	ClashCounted bool `json:"clash_resolve_counted"`
}

// Usage is Count/Max, or 0 when Max is unknown.
func (c Conntrack) Usage() float64 {
	if c.Max <= 0 {
		return 0
	}
	return float64(c.Count) / float64(c.Max)
}

// ConntrackCounters are the summed per-CPU conntrack statistics.
type ConntrackCounters struct {
	InsertFailed uint64 `json:"insert_failed"`
	Drop         uint64 `json:"drop"`
	EarlyDrop    uint64 `json:"early_drop"`
	// ClashResolve counts clashing inserts the kernel resolved (Linux
	// 5.6+ resolves the DNS A/AAAA clash); see Conntrack.ClashCounted.
	ClashResolve uint64 `json:"clash_resolve"`
}

// UDP holds the receive-side UDP checksum error counters: Udp InCsumErrors
// of /proc/net/snmp and Udp6InCsumErrors of /proc/net/snmp6.
type UDP struct {
	InCsumErrors uint64 `json:"in_csum_errors"`
	// Delta is how many bad checksums arrived during the window.
	Delta uint64 `json:"delta"`
	Err   Err    `json:"error,omitzero"`
	// InCsumErrors6, Delta6 and Err6 are the same for IPv6.
	InCsumErrors6 uint64 `json:"in_csum_errors6"`
	Delta6        uint64 `json:"delta6"`
	Err6          Err    `json:"error6,omitzero"`
	// QuietFor is how long the prober has watched the counters without a
	// rise that was not traced to non-tunnel ports: the window in a first
	// snapshot, longer in a running serve.
	QuietFor time.Duration `json:"quiet_for_ns"`
	// Capture is what a bounded capture saw when the counters rose, nil
	// when they did not or no capture was attempted.
	Capture *ChecksumCapture `json:"capture,omitempty"`
	// Reported is what other nodes reported about this node's tunnel
	// packets, nil where nodetune runs outside a cluster.
	Reported *ChecksumReports `json:"reported,omitempty"`
}

// KubeProxy is what the local kube-proxy says about itself.
type KubeProxy struct {
	// Running is true when kube-proxy answered on its metrics port.
	Running bool `json:"running"`
	// Mode is iptables, ipvs, nftables or kernelspace, as kube-proxy says.
	Mode string `json:"mode,omitempty"`
	// Err is why kube-proxy could not be asked; absence is not an error.
	Err Err `json:"error,omitzero"`
	// NATRules is the number of rules kube-proxy keeps in the nat table,
	// from its metrics, or -1 when it does not say.
	NATRules int64 `json:"nat_rules"`
	// SyncSeconds is the mean duration of kube-proxy's rule syncs, or -1:
	// over the syncs since the previous snapshot when there were any, else
	// as last measured, and over kube-proxy's life in a first snapshot.
	SyncSeconds float64 `json:"sync_seconds"`
	// Syncs is kube-proxy's cumulative rule sync histogram, from which
	// SyncSeconds is derived.
	Syncs SyncHistogram `json:"syncs"`
	// IPVSModules maps each module IPVS mode needs to whether it is loaded.
	IPVSModules map[string]bool `json:"ipvs_modules,omitempty"`
	ModulesErr  Err             `json:"modules_error,omitzero"`
	// Version is kube-proxy's version, from kubernetes_build_info.
	Version    KubeVersion `json:"version,omitzero"`
	VersionErr Err         `json:"version_error,omitzero"`
	// Config is kube-proxy's running configuration from /configz, nil
	// when it does not serve one.
	Config    *KubeProxyConfig `json:"config,omitempty"`
	ConfigErr Err              `json:"config_error,omitzero"`
	// FullSyncs is the histogram of full rule syncs (1.28+), and
	// FullSyncSeconds their mean as SyncSeconds is derived, or -1.
	FullSyncs       SyncHistogram `json:"full_syncs"`
	FullSyncSeconds float64       `json:"full_sync_seconds"`
	// NFTablesSyncFailures is kube-proxy's count of failed nftables syncs
	// (kubeproxy_sync_proxy_rules_nftables_sync_failures_total), and
	// NFTablesSyncFailuresDelta its growth since the previous snapshot,
	// -1 when there was none to compare with. MetricsRead says whether
	// /metrics answered at all.
	NFTablesSyncFailures      uint64 `json:"nftables_sync_failures"`
	MetricsRead               bool   `json:"metrics_read"`
	NFTablesSyncFailuresDelta int64  `json:"nftables_sync_failures_delta"`
	// ConnReuseMode is net.ipv4.vs.conn_reuse_mode, or -1 when unread.
	ConnReuseMode int64 `json:"ipvs_conn_reuse_mode"`
}

// SyncHistogram is the count and sum of a cumulative duration histogram.
type SyncHistogram struct {
	Count      uint64  `json:"count"`
	SumSeconds float64 `json:"sum_seconds"`
}

// Mean returns the mean duration of the observations after prev, or
// false when there were none.
func (h SyncHistogram) Mean(prev SyncHistogram) (float64, bool) {
	if h.Count <= prev.Count || h.SumSeconds < prev.SumSeconds {
		return 0, false
	}
	return (h.SumSeconds - prev.SumSeconds) / float64(h.Count-prev.Count), true
}

// IPVSModuleNames are the kernel modules kube-proxy's IPVS mode needs.
var IPVSModuleNames = []string{"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh"}

// Host is what the node's filesystem and process list say about the
// networking agents on it.
type Host struct {
	// CNIConfigs are the file names in /etc/cni/net.d.
	CNIConfigs []string `json:"cni_configs,omitempty"`
	CNIErr     Err      `json:"cni_error,omitzero"`
	// Processes are the names of the networking agents seen running.
	Processes []string `json:"processes,omitempty"`
	ProcErr   Err      `json:"processes_error,omitzero"`
}
