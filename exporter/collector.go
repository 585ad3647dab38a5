package exporter

import (
	"runtime"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// names are the names of the metrics the collector and the counters emit.
var names []string

func desc(name, help string, labels ...string) *prometheus.Desc {
	names = append(names, name)
	return prometheus.NewDesc(name, help, labels, nil)
}

// MetricNames lists the name of every nodetune_ metric the exporter can
// emit, for checking dashboards and alerting rules against.
func MetricNames() []string {
	return append(slices.Clone(names), remediationsName, conflictsName, refusalsName)
}

// The metrics the collector derives from the current State. docs/metrics.md
// describes each; keep the two in step.
var (
	descBuildInfo = desc("nodetune_build_info",
		"Always 1; the labels say which nodetune and Go built this exporter.", "version", "goversion")
	descUp = desc("nodetune_snapshot_ready",
		"1 once nodetune has taken its first snapshot of the node; until then every other nodetune_ metric is absent.")
	descTaken = desc("nodetune_snapshot_timestamp_seconds",
		"When the snapshot the metrics describe was completed (Unix time). If it stops advancing, nodetune's view of the node's network performance is stale.")
	descWindow = desc("nodetune_snapshot_window_seconds",
		"The span the rates (softirq, steal, drops) of the current snapshot were measured over.")
	descFinding = desc("nodetune_finding",
		"1 for each active finding: a cause of lost network throughput or latency that nodetune sees on this node now. Rule IDs are stable.",
		"rule", "severity", "subject")
	descUnchecked = desc("nodetune_rule_unchecked",
		"1 for each rule that could not judge a subject because a fact was unreadable; a hidden cause of lost performance may be behind it.",
		"rule", "subject")
	descLoss = desc("nodetune_estimated_throughput_loss_ratio",
		"Estimated share of throughput (0 to 1) a finding costs, from published or on-node measurements (see docs/metrics.md).",
		"rule", "subject")
	descOffload = desc("nodetune_tunnel_offload_enabled",
		"1 if the ethtool offload feature is active on the tunnel device, 0 if not. tx-checksum-ip-generic at 0 on a VXLAN device costs most of its throughput.",
		"device", "kind", "feature")
	descTunnelMTU = desc("nodetune_tunnel_mtu_bytes",
		"MTU of the tunnel device. Above the underlay's MTU minus the encapsulation overhead, full-sized packets fragment or are dropped.",
		"device", "kind")
	descSoftirq = desc("nodetune_cpu_softirq_ratio",
		"Share of the CPU's time spent in softirq (packet processing) over the last window. One CPU near 1 while others idle caps receive throughput.",
		"cpu")
	descSteal = desc("nodetune_cpu_steal_ratio",
		"Share of the CPU's time the hypervisor took over the last window. Packet processing waits through it, so latency jitters.",
		"cpu")
	descSoftnetProcessed = desc("nodetune_softnet_processed_total",
		"Packets the kernel's receive backlog processed since boot, summed over CPUs; the base for the drop and squeeze rates.")
	descSoftnetDropped = desc("nodetune_softnet_dropped_total",
		"Packets dropped since boot because a CPU's input backlog (net.core.netdev_max_backlog) was full; each one is lost before any socket sees it.")
	descSoftnetSqueezed = desc("nodetune_softnet_times_squeezed_total",
		"Times since boot the receive softirq ran out of budget (net.core.netdev_budget) with packets left, which adds receive latency under load.")
	descCTEntries = desc("nodetune_conntrack_entries",
		"Entries in the conntrack table now. Every NATed or filtered flow needs one.")
	descCTLimit = desc("nodetune_conntrack_limit",
		"Size of the conntrack table (net.netfilter.nf_conntrack_max). When entries reach it, new connections are dropped.")
	descCTUsage = desc("nodetune_conntrack_usage_ratio",
		"Conntrack entries divided by the limit. At 1 the kernel drops the first packet of every new flow.")
	descCTInsertFailed = desc("nodetune_conntrack_insert_failed_total",
		"Conntrack inserts that lost a race since boot; rising, it is the cause of 5-second DNS timeouts.")
	descCTDrop = desc("nodetune_conntrack_drop_total",
		"Packets conntrack dropped since boot because it could not track them (table full or insert failure).")
	descCTEarlyDrop = desc("nodetune_conntrack_early_drop_total",
		"Conntrack entries evicted early since boot to make room for new flows: the table is under pressure.")
	descUDPCsum = desc("nodetune_udp_checksum_errors_total",
		"UDP packets received with bad checksums since boot (Udp InCsumErrors). Rising while tunnel tx checksum offload is on means the NAT checksum bug corrupts tunnel traffic.")
	descProbeDuration = desc("nodetune_probe_duration_seconds",
		"How long each probe took in the last cycle; a slow probe delays how fast nodetune notices lost performance.",
		"probe")
	descProbeSuccess = desc("nodetune_probe_success",
		"1 if the probe read everything it looks at in the last cycle, 0 if part of it was unreadable (see /findings for why).",
		"probe")
	descThroughput = desc("nodetune_measured_throughput_bps",
		"Throughput in bits per second that the last on-demand benchmark measured on this node, by path.",
		"path")
	descJournalOK = desc("nodetune_journal_ok",
		"In remediate mode, 1 while the remediation journal is usable; 0 when it is corrupt, foreign or locked, and the agent only observes, so no performance fix is applied.")
	descOwned = desc("nodetune_remediation_settings_owned",
		"Settings nodetune changed to restore network performance and still holds (open journal entries); a rollback would restore them.")
	descGivenUp = desc("nodetune_remediation_settings_given_up",
		"Settings nodetune stopped fixing because another agent kept undoing the fix; their performance loss stays until the owner changes them.")
	descLastSuccess = desc("nodetune_remediation_last_success_timestamp_seconds",
		"When nodetune last wrote a performance fix and read it back (Unix time); absent if it never did.")
)

var allDescs = []*prometheus.Desc{
	descBuildInfo, descUp, descTaken, descWindow, descFinding, descUnchecked, descLoss, descOffload, descTunnelMTU,
	descSoftirq, descSteal, descSoftnetProcessed, descSoftnetDropped, descSoftnetSqueezed,
	descCTEntries, descCTLimit, descCTUsage, descCTInsertFailed, descCTDrop, descCTEarlyDrop,
	descUDPCsum, descProbeDuration, descProbeSuccess, descThroughput,
	descJournalOK, descOwned, descGivenUp, descLastSuccess,
	descUDP6Csum, descUDPAttribution, descUDPBadSource,
	descPeerThroughput, descPeerCaseSuccess, descPeerBottleneck, descPeerTimestamp,
}

// collector turns the exporter's current State into metrics. It only reads
// the State, so any number of scrapes may run at once.
type collector struct{ e *Exporter }

// Describe sends every metric the collector may emit.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect sends the metrics of the current State.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descBuildInfo, 1, c.e.version, runtime.Version())
	st := c.e.state.Load()
	if st == nil {
		gauge(descUp, 0)
		return
	}
	gauge(descUp, 1)
	s := st.Snapshot
	gauge(descTaken, float64(s.Taken.UnixNano())/1e9)
	gauge(descWindow, s.Window.Seconds())
	collectFindings(st.Result, gauge)
	collectTunnels(s.Tunnels, gauge)
	collectCPU(s.CPU, gauge)
	if !s.Softnet.Err.Failed() {
		counter(descSoftnetProcessed, s.Softnet.Totals.Processed)
		counter(descSoftnetDropped, s.Softnet.Totals.Dropped)
		counter(descSoftnetSqueezed, s.Softnet.Totals.TimeSqueezed)
	}
	if ct := s.Conntrack; ct.Present && !ct.Err.Failed() {
		gauge(descCTEntries, float64(ct.Count))
		gauge(descCTLimit, float64(ct.Max))
		gauge(descCTUsage, ct.Usage())
	}
	if ct := s.Conntrack; !ct.StatErr.Failed() {
		counter(descCTInsertFailed, ct.Totals.InsertFailed)
		counter(descCTDrop, ct.Totals.Drop)
		counter(descCTEarlyDrop, ct.Totals.EarlyDrop)
	}
	if !s.UDP.Err.Failed() {
		counter(descUDPCsum, s.UDP.InCsumErrors)
	}
	collectUDPChecksums(s.UDP, gauge, counter)
	collectPeers(s.Peers, gauge)
	for _, p := range s.Probes {
		gauge(descProbeDuration, p.Duration.Seconds(), p.Name)
		gauge(descProbeSuccess, boolFloat(!p.Err.Failed()), p.Name)
	}
	for _, t := range st.Throughput {
		gauge(descThroughput, t.BitsPerSecond, t.Path)
	}
	if r := c.e.remedy.Load(); r != nil {
		gauge(descJournalOK, boolFloat(r.JournalOK))
		gauge(descOwned, float64(r.Owned))
		gauge(descGivenUp, float64(r.GivenUp))
		if !r.LastSuccess.IsZero() {
			gauge(descLastSuccess, float64(r.LastSuccess.UnixNano())/1e9)
		}
	}
}

// collectFindings emits one series per finding. Two findings of one rule on
// one subject would make the scrape fail, so only the first is kept.
func collectFindings(r rules.Result, gauge func(*prometheus.Desc, float64, ...string)) {
	type key struct{ rule, subject string }
	seen := make(map[key]bool, len(r.Findings))
	for _, f := range r.Findings {
		k := key{f.Rule, f.Subject}
		if seen[k] {
			continue
		}
		seen[k] = true
		gauge(descFinding, 1, f.Rule, f.Severity.String(), f.Subject)
		if f.Impact.ThroughputLossRatio > 0 {
			gauge(descLoss, f.Impact.ThroughputLossRatio, f.Rule, f.Subject)
		}
	}
	unchecked := make(map[key]bool, len(r.Unchecked))
	for _, u := range r.Unchecked {
		k := key{u.Rule, u.Subject}
		if !unchecked[k] {
			unchecked[k] = true
			gauge(descUnchecked, 1, u.Rule, u.Subject)
		}
	}
}

func collectTunnels(ts detect.Tunnels, gauge func(*prometheus.Desc, float64, ...string)) {
	for _, t := range ts.Devices {
		gauge(descTunnelMTU, float64(t.MTU), t.Name, t.Kind)
		if t.Features.Err.Failed() {
			continue
		}
		for _, f := range detect.WatchedFeatures {
			if on, ok := t.Features.Has(f); ok {
				gauge(descOffload, boolFloat(on), t.Name, t.Kind, f)
			}
		}
	}
}

func collectCPU(c detect.CPU, gauge func(*prometheus.Desc, float64, ...string)) {
	if c.Err.Failed() {
		return
	}
	for _, u := range c.PerCPU {
		cpu := strconv.Itoa(u.CPU)
		gauge(descSoftirq, u.Softirq, cpu)
		gauge(descSteal, u.Steal, cpu)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
