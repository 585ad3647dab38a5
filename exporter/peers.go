package exporter

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodetune/nodetune/detect"
)

// The peer measurements: the last measurement to each peer (at most
// peerstate.MaxPeers, each of a few cases, so the cardinality stays
// bounded), from the snapshot, so a scrape never measures.
var (
	descPeerThroughput = desc("nodetune_peer_throughput_bytes_per_second",
		"TCP payload per second (bytes: Prometheus's base unit; times 8 for bits) the last peer measurement found between this node and a peer, by path (host, tunnel, tunnel-offload-on, tunnel-offload-off) and direction (send: this node to the peer; receive); only cases that were measured.",
		"peer", "path", "direction")
	descPeerCaseSuccess = desc("nodetune_peer_case_success",
		"1 if the last peer measurement measured the case, 0 if it could not (see /findings or doctor for why).",
		"peer", "path", "direction")
	descPeerBottleneck = desc("nodetune_peer_bottleneck_info",
		"Always 1; bottleneck says what limited the case in the last peer measurement, such as \"cpu1 at 100% softirq on the receiver\"; absent when nothing stood out.",
		"peer", "path", "direction", "bottleneck")
	descPeerTimestamp = desc("nodetune_peer_measurement_timestamp_seconds",
		"When the last peer measurement to the peer ended (Unix time). Rules use a measurement for 6 hours.",
		"peer")
)

// collectPeers emits the peer measurements of p. A case listed twice in one
// measurement keeps its first entry, so the scrape stays valid.
func collectPeers(p detect.Peers, gauge func(*prometheus.Desc, float64, ...string)) {
	seenPeer := map[string]bool{}
	for _, m := range p.Measurements {
		if seenPeer[m.Peer] {
			continue
		}
		seenPeer[m.Peer] = true
		if !m.At.IsZero() {
			gauge(descPeerTimestamp, float64(m.At.UnixNano())/1e9, m.Peer)
		}
		type key struct{ path, dir string }
		seen := map[key]bool{}
		for _, c := range m.Cases {
			k := key{c.Name, c.Direction}
			if seen[k] {
				continue
			}
			seen[k] = true
			ok := c.Err.IsZero() && c.BitsPerSecond > 0
			gauge(descPeerCaseSuccess, boolFloat(ok), m.Peer, c.Name, c.Direction)
			if !ok {
				continue
			}
			gauge(descPeerThroughput, c.BitsPerSecond/8, m.Peer, c.Name, c.Direction)
			if c.Bottleneck != "" {
				gauge(descPeerBottleneck, 1, m.Peer, c.Name, c.Direction, c.Bottleneck)
			}
		}
	}
}
