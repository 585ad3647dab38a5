package rules

import (
	"fmt"

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
		} else if u.Capture != nil {
			why = fmt.Sprintf("a %s capture of %d UDP packets saw none of them", u.Capture.Duration, u.Capture.Inspected)
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
