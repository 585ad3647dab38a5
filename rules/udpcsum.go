package rules

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nodetune/nodetune/detect"
)

// udpChecksumSubject is the subject of udp-checksum-errors findings: the
// node's UDP receive path, not a device.
const udpChecksumSubject = "udp"

// evalUDPChecksumErrors reports bad UDP checksums that are not evidence
// about a tunnel: those a capture traced to non-tunnel ports, and those no
// capture could trace. Neither says anything about tx checksum offload, so
// neither is fixed automatically.
func evalUDPChecksumErrors(s *detect.Snapshot, c Config, r *Result) {
	evalPeersOffloadOff(s, r)
	u := s.UDP
	verdict := u.ChecksumVerdict()
	counted := Evidence{"udp_in_csum_errors_delta", fmt.Sprint(u.Delta)}
	counted6 := Evidence{"udp6_in_csum_errors_delta", fmt.Sprint(u.Delta6)}
	refs := []string{
		"https://github.com/torvalds/linux/blob/master/net/ipv4/udp.c",
		"https://man7.org/linux/man-pages/man7/packet.7.html",
	}
	switch {
	case verdict == detect.AttrUnattributed:
		why := "no capture ran"
		if u.Capture != nil && u.Capture.Err.Failed() {
			why = u.Capture.Err.Error()
		} else if c := u.Capture; c != nil && c.OtherBad > 0 {
			why = fmt.Sprintf("a %s capture of %d UDP packets saw %d of the %d bad checksums the kernel counted meanwhile, all to "+
				"non-tunnel ports (%s); the rest may have been tunnel packets", c.Duration, c.Inspected, c.OtherBad, c.CounterDelta,
				detect.JoinSources(c.OtherSources()))
		} else if c != nil {
			why = fmt.Sprintf("a %s capture of %d UDP packets saw none of them", c.Duration, c.Inspected)
		}
		r.add(Finding{
			Rule:     UDPChecksumErrors,
			Severity: Warning,
			Subject:  udpChecksumSubject,
			Summary:  fmt.Sprintf("%d UDP packets with bad checksums arrived in %s; their senders and ports are unattributed", u.Delta+u.Delta6, s.Window),
			Explanation: "Udp InCsumErrors and Udp6InCsumErrors count every UDP datagram with a bad checksum, from any sender to any " +
				"port, so on their own they say nothing about this node's tunnel offload. nodetune traces them with a short packet " +
				"capture of the UDP packets arriving while the counters rise; that capture could not say which packets were bad (" +
				why + "). Until it can, nothing is changed on this evidence.",
			Evidence: []Evidence{counted, counted6, {"attribution", string(detect.AttrUnattributed)}, {"capture", why}},
			Impact:   Impact{Summary: "datagrams from some sender are dropped before any socket sees them"},
			Fix: Fix{Manual: "give nodetune CAP_NET_RAW (packet sockets) so that it can capture the bad packets and name their senders " +
				"and ports, or capture them yourself: tcpdump -vv -i any udp (tcpdump reports \"bad udp cksum\")"},
			References: refs,
		})
	case u.Capture != nil && !u.Capture.Err.Failed() && u.Capture.OtherBad > 0:
		others := u.Capture.OtherSources()
		r.add(Finding{
			Rule:     UDPChecksumErrors,
			Severity: Info,
			Subject:  udpChecksumSubject,
			Summary: fmt.Sprintf("%d UDP packets with bad checksums arrived on non-tunnel ports, from %s",
				u.Capture.OtherBad, detect.JoinSources(others)),
			Explanation: "A packet capture traced these bad checksums to senders and ports that are not a tunnel's: they are evidence " +
				"about those senders (or a NIC or middlebox on their path), and none about this node's tunnel offload. " +
				"The kernel drops such datagrams before any socket sees them.",
			Evidence:   []Evidence{counted, counted6, {"attribution", string(detect.AttrOther)}, {"bad_checksum_sources", detect.JoinSources(others)}},
			Impact:     Impact{Summary: "datagrams from the senders named are dropped"},
			Fix:        Fix{Manual: "look at the senders named: their NIC offloads, the path between, or a misbehaving client"},
			References: refs,
		})
	}
}

// evalPeersOffloadOff names the peers that send bad outer checksums to a
// tunnel whose own tx checksum offload is off here, which
// tunnel-tx-checksum-unsafe (about devices with offload on) does not cover.
func evalPeersOffloadOff(s *detect.Snapshot, r *Result) {
	if s.UDP.ChecksumVerdict() != detect.AttrTunnel || s.Tunnels.Err.Failed() {
		return
	}
	for _, t := range s.Tunnels.Devices {
		if on, ok := t.Features.Has(detect.FeatureTxChecksumGeneric); ok && on && !t.Features.Err.Failed() {
			continue // tunnel-tx-checksum-unsafe names them
		}
		peers := peerSources(s, t)
		if len(peers) == 0 {
			continue
		}
		var n uint64
		for _, p := range peers {
			n += p.Count
		}
		r.add(Finding{
			Rule:     UDPChecksumErrors,
			Severity: Warning,
			Subject:  t.Name,
			Summary:  fmt.Sprintf("%d tunnel packets with bad outer UDP checksums arrived on %s from %s", n, t.Name, joinPeers(peers)),
			Explanation: "A packet capture traced bad outer checksums to the peers named: evidence about those senders (their " +
				"kernel, their offload, or a NIC or hypervisor on the path). Tx checksum offload is not on for " + t.Name +
				" here, so this node's own offload is not what corrupts them.",
			Evidence: []Evidence{{"bad_checksum_peers", detect.JoinSources(peers)}, {"attribution", string(detect.AttrTunnel)}},
			Impact:   Impact{Summary: "tunnel packets from those peers are being dropped for bad checksums now"},
			Fix: Fix{Manual: "check the peers named: their kernels (the NAT checksum fix, commit ea64d8d6c675) and their tunnel offload " +
				"(ethtool -k on their tunnel device), and the NICs and hypervisors between"},
			References: checksumReferences,
		})
	}
}

// reportsAbout returns the recent reports by other nodes that packets
// from tunnel t arrived corrupt, recording in r when the reports could not
// be read or matched to t.
func reportsAbout(s *detect.Snapshot, t detect.Tunnel, r *Result) []detect.ChecksumReport {
	rep := s.UDP.Reported
	if rep == nil {
		return nil // outside a cluster: no one to report
	}
	if rep.Err.Failed() {
		r.unchecked(TunnelTxChecksumUnsafe, t.Name, fmt.Errorf("reading what other nodes reported about this node's tunnel packets: %w", rep.Err))
		return nil
	}
	about, known := rep.ReportsAbout(t)
	if !known {
		err := errors.New("other nodes reported bad checksums on packets to port " + fmt.Sprint(t.Port) +
			", but the addresses " + t.Name + " sends from could not be read to tell whether they were this tunnel's")
		if t.Underlay != nil && t.Underlay.AddrsErr.Failed() {
			err = fmt.Errorf("%w: %w", err, t.Underlay.AddrsErr)
		}
		r.unchecked(TunnelTxChecksumUnsafe, t.Name, err)
		return nil
	}
	return detect.FreshReports(about, s.Taken)
}

// reportedUnsafe rewrites f for recent reports, by the nodes that received
// them, that tunnel packets this node sent from t arrived with bad outer
// checksums: evidence about this node's own tunnel, which turning its tx
// checksum offload off addresses, so the fix is automatic here.
func reportedUnsafe(s *detect.Snapshot, t detect.Tunnel, reported []detect.ChecksumReport, change Change, f *Finding) {
	var n uint64
	receivers := map[string]bool{}
	var names []string
	for _, rep := range reported {
		n += rep.Count
		if !receivers[rep.Receiver] {
			receivers[rep.Receiver] = true
			names = append(names, rep.Receiver)
		}
	}
	f.Severity = Critical
	f.Summary = fmt.Sprintf("%d tunnel packets this node sent from %s %s arrived with bad outer UDP checksums at %s",
		n, t.Kind, t.Name, strings.Join(names, ", "))
	f.Explanation = "Other nodes traced packets with bad outer UDP checksums, arriving at the tunnel port of " + t.Name +
		", to an address that " + t.Name + " sends from, and recorded it on this Node (" + detect.JoinReports(reported) +
		"). The packets are corrupted on this node or on its way out, which tx checksum offload on " + t.Name +
		" is the known cause of (the NAT checksum bug, commit ea64d8d6c675, and NICs or hypervisors that mishandle " +
		"offloaded UDP tunnel checksums). Turning it off makes the kernel compute the checksums in software, at a cost " +
		"in throughput; the receivers' reports stop when the packets arrive whole."
	f.Evidence = append(f.Evidence, Evidence{"reported_by", detect.JoinReports(reported)},
		Evidence{"report_freshness", detect.ReportFreshness.String()})
	f.Impact.Summary = "tunnel packets from this node are dropped by their receivers for bad checksums now"
	f.Fix = Fix{Command: change.Command(), Auto: true, Changes: []Change{change}}
}

// reportsHoldOffloadOff says why tx checksum offload must stay off on t,
// or "": another node reported this node's packets from t corrupt, and the
// API server still holds that report (Events live an hour by default), or
// the reports could not be read. Turning offload on again would undo the
// fix those reports led to; unread reports are no evidence that none exist.
func reportsHoldOffloadOff(s *detect.Snapshot, t detect.Tunnel) string {
	rep := s.UDP.Reported
	if rep == nil {
		return ""
	}
	if rep.Err.Failed() {
		return "what other nodes reported about this node's tunnel packets could not be read (" + rep.Err.Error() +
			"); tx checksum offload is turned on automatically only where nodetune can see that no node reports " + t.Name + "'s packets corrupt"
	}
	about, known := rep.ReportsAbout(t)
	if !known {
		return "other nodes reported bad checksums on packets to port " + fmt.Sprint(t.Port) +
			" and the addresses " + t.Name + " sends from could not be read to rule this tunnel out; tx checksum offload stays off"
	}
	if len(about) == 0 {
		return ""
	}
	return "other nodes reported tunnel packets from " + t.Name + " with bad outer checksums (" + detect.JoinReports(about) +
		"); tx checksum offload stays off while the API server keeps those reports, whatever their age"
}
