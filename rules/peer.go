package rules

import (
	"fmt"

	"github.com/nodetune/nodetune/detect"
)

// TunnelOffloadHurts is the rule that reports a tunnel device whose tx
// checksum offload a peer measurement found slower on than off.
const TunnelOffloadHurts = "tunnel-offload-hurts"

// peerChecksumOffLoss is what tunnel-tx-checksum-off quotes for t: the
// loss measured between this node and a peer when a usable peer
// measurement exists, else checksumOffLoss's figure. It also returns the
// measurement's evidence.
func peerChecksumOffLoss(s *detect.Snapshot, t detect.Tunnel, c Config) (loss float64, says, source string, ev []Evidence) {
	o, ok, why := s.Peers.OffloadEvidence(t, s.Taken)
	if !ok {
		loss, says, source = checksumOffLoss(c)
		if len(s.Peers.Measurements) > 0 {
			ev = append(ev, Evidence{"peer_measurement", "not used: " + why})
		}
		return loss, says, source, ev
	}
	ev = peerEvidence(o)
	if o.Loss() == 0 {
		return 0, fmt.Sprintf("measured between this node and %s: no loss with offload off (%s on, %s off)",
				o.Peer, detect.Rate(o.On), detect.Rate(o.Off)),
			"measured on this node pair by nodetune's peer measurement: " + o.String(), ev
	}
	return o.Loss(), fmt.Sprintf("measured between this node and %s: the tunnel loses %.0f%% of its throughput (%s on, %s off)",
			o.Peer, o.Loss()*100, detect.Rate(o.On), detect.Rate(o.Off)),
		"measured on this node pair by nodetune's peer measurement: " + o.String(), ev
}

func peerEvidence(o detect.OffloadMeasure) []Evidence {
	return []Evidence{
		{"peer", o.Peer},
		{"peer_offload_on_bps", fmt.Sprintf("%.0f", o.On)},
		{"peer_offload_off_bps", fmt.Sprintf("%.0f", o.Off)},
		{"peer_measured_at", o.At.UTC().Format("2006-01-02T15:04:05Z")},
	}
}

// evalOffloadHurts reports each tunnel whose tx checksum offload a recent
// peer measurement of this device, at its present MTU, found measurably
// slower on than off. tunnel-tx-checksum-off is not raised for it.
func evalOffloadHurts(s *detect.Snapshot, _ Config, r *Result) {
	if s.Tunnels.Err.Failed() || len(s.Peers.Measurements) == 0 {
		return
	}
	for _, t := range s.Tunnels.Devices {
		o, ok, _ := s.Peers.OffloadEvidence(t, s.Taken)
		if !ok || !o.Hurts() {
			continue
		}
		on, known := t.Features.Has(detect.FeatureTxChecksumGeneric)
		if t.Features.Err.Failed() || !known {
			r.unchecked(TunnelOffloadHurts, t.Name, fmt.Errorf("tx checksum offload state of %s unknown: %w", t.Name, t.Features.Err))
			continue
		}
		says := fmt.Sprintf("with tx checksum offload on, the tunnel from this node to %s ran at %s; with it off, at %s",
			o.Peer, detect.Rate(o.On), detect.Rate(o.Off))
		f := Finding{
			Rule:    TunnelOffloadHurts,
			Subject: t.Name,
			Explanation: "nodetune measured the real path between this node and " + o.Peer + " with a temporary tunnel of " + t.Name +
				"'s kind and MTU over the same underlay, once with tx checksum offload on and once off on this (the sending) end. " +
				"Offload on was measurably slower (by more than " + fmt.Sprintf("%.0f%%", detect.OffloadHurtsMargin*100) + "): on some NICs " +
				"and kernels the segmentation offload that comes with it produces packets the path handles badly " +
				"(projectcalico/calico issue 11435: 50-300 Mbit/s with it on, 9+ Gbit/s off). On this path off is the right state, " +
				"whatever the kernel version says, so nodetune does not turn it on here. The measurement counts for " +
				detect.PeerMaxAge.String() + " and only while " + t.Name + " keeps MTU " + fmt.Sprint(t.MTU) + ".",
			Evidence: append(append(offloadEvidence(t), Evidence{"mtu", fmt.Sprint(t.MTU)}), peerEvidence(o)...),
			Impact:   Impact{Summary: says, Source: "measured on this node pair by nodetune's peer measurement: " + o.String()},
			References: []string{
				"https://github.com/projectcalico/calico/issues/11435",
			},
		}
		if on {
			f.Severity = Warning
			f.Summary = fmt.Sprintf("tx checksum offload is on for %s %s and measured slower than off: %s", t.Kind, t.Name, says)
			if o.On > 0 {
				f.Impact.ThroughputLossRatio = 1 - o.On/o.Off
			}
			f.Fix = Fix{
				Command: featureChange(t.Name, detect.FeatureTxChecksumGeneric, "off").Command(),
				Manual: "measured on the path to " + o.Peer + " only: measure another peer (`nodetune bench --peer NODE`) before " +
					"changing it, and turn it off through the CNI when one manages it (see cni-owns-offload)",
			}
		} else {
			f.Severity = Info
			f.Summary = fmt.Sprintf("tx checksum offload is off on %s %s, and stays off: %s", t.Kind, t.Name, says)
			f.Fix = Fix{Manual: "nothing to change: off measured faster on this path; a new measurement after a kernel, driver or NIC change tells whether that still holds"}
		}
		if f.Owner = detect.OffloadOwner(s, t.Name); f.Owner != nil && on {
			f.Fix.Manual += "; " + f.Owner.Name + " manages this setting: " + f.Owner.DurableFix
		}
		r.add(f)
	}
}
