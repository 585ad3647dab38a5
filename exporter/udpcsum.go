package exporter

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodetune/nodetune/detect"
)

// The UDP checksum evidence: IPv6's counter, what the last window's rise was
// traced to, and the senders a capture named (at most
// detect.MaxChecksumSources, so the cardinality stays bounded).
var (
	descUDP6Csum = desc("nodetune_udp6_checksum_errors_total",
		"UDP packets received over IPv6 with bad checksums since boot (Udp6InCsumErrors).")
	descUDPAttribution = desc("nodetune_udp_checksum_attribution",
		"What the last window's UDP checksum errors were traced to, 1 for the current state and 0 for the others: quiet (none), tunnel, other (non-tunnel ports), unattributed (no capture could trace them); absent when the counters are unreadable.",
		"attribution")
	descUDPBadSource = desc("nodetune_udp_bad_checksum_packets",
		"UDP packets with bad checksums that the last capture saw from one sender, for the top senders; tunnel is the receiving tunnel device, empty for other ports.",
		"source", "destination_port", "tunnel")
)

var udpDescs = []*prometheus.Desc{descUDP6Csum, descUDPAttribution, descUDPBadSource}

// attributionStates are the states of nodetune_udp_checksum_attribution,
// all exported, 1 for the current one: a state set, so that an alert on
// one state resolves with a 0 rather than a missing series.
var attributionStates = []detect.Attribution{detect.AttrQuiet, detect.AttrTunnel, detect.AttrOther, detect.AttrUnattributed}

// collectUDPChecksums emits the UDP checksum evidence of u.
func collectUDPChecksums(u detect.UDP, gauge func(*prometheus.Desc, float64, ...string), counter func(*prometheus.Desc, uint64, ...string)) {
	if u.Readable() == nil && !u.Err6.Failed() {
		counter(descUDP6Csum, u.InCsumErrors6)
	}
	v := u.ChecksumVerdict()
	if v == detect.AttrUnknown {
		return // absent, not a guess
	}
	for _, state := range attributionStates {
		gauge(descUDPAttribution, boolFloat(state == v), string(state))
	}
	if u.Capture == nil {
		return
	}
	// A sender seen from several source ports is one series.
	type key struct{ src, port, tunnel string }
	sum := map[key]uint64{}
	var order []key
	for _, s := range u.Capture.Sources {
		k := key{s.Addr.String(), strconv.Itoa(int(s.DstPort)), s.Tunnel}
		if _, ok := sum[k]; !ok {
			order = append(order, k)
		}
		sum[k] += s.Count
	}
	for _, k := range order {
		gauge(descUDPBadSource, float64(sum[k]), k.src, k.port, k.tunnel)
	}
}
