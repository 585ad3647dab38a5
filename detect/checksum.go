package detect

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// OuterChecksum is how a UDP tunnel device fills the outer UDP checksum of
// the packets it sends and which it accepts, as netlink reports it
// (IFLA_VXLAN_UDP_CSUM, IFLA_VXLAN_UDP_ZERO_CSUM6_TX/RX and Geneve's
// IFLA_GENEVE_UDP_CSUM, IFLA_GENEVE_UDP_ZERO_CSUM6_TX/RX).
type OuterChecksum struct {
	// UDPCsum is "udpcsum": the device computes outer checksums over IPv4.
	UDPCsum bool `json:"udp_csum"`
	// ZeroCsum6Tx is "udp6zerocsumtx": the device sends zero outer
	// checksums over IPv6.
	ZeroCsum6Tx bool `json:"udp6_zero_csum_tx"`
	// ZeroCsum6Rx is "udp6zerocsumrx": the device accepts zero outer
	// checksums over IPv6.
	ZeroCsum6Rx bool `json:"udp6_zero_csum_rx"`
	// PerPacket reports an external (collect_md) device, such as Cilium's
	// cilium_vxlan: the outer checksum of each packet it sends follows the
	// packet's tunnel key (set by a BPF program or Open vSwitch), not
	// UDPCsum or ZeroCsum6Tx.
	PerPacket bool `json:"per_packet,omitempty"`
}

// SendsZeroChecksum reports whether tunnel t sends outer UDP checksums of
// zero, the only packets the NAT checksum bug (fixed by commit
// ea64d8d6c675) corrupts. known is false when t's settings were not read
// (or t is not a UDP tunnel), and then nodetune cannot rule exposure out.
func (t Tunnel) SendsZeroChecksum() (zero, known bool) {
	if t.OuterChecksum == nil || t.OuterChecksum.PerPacket {
		return false, false
	}
	if t.IPv6 {
		return t.OuterChecksum.ZeroCsum6Tx, true
	}
	return !t.OuterChecksum.UDPCsum, true
}

// Attribution says what the bad UDP checksums of a window could be traced to.
type Attribution string

// The attributions of ChecksumVerdict.
const (
	// AttrUnknown: the checksum error counters could not be read.
	AttrUnknown Attribution = "unknown"
	// AttrQuiet: the counters were read and did not rise in the window.
	AttrQuiet Attribution = "quiet"
	// AttrTunnel: a capture saw bad checksums on packets to a tunnel port.
	AttrTunnel Attribution = "tunnel"
	// AttrOther: a capture saw bad checksums only on non-tunnel ports.
	AttrOther Attribution = "other"
	// AttrUnattributed: the counters rose but no capture could say which
	// packets were bad (no CAP_NET_RAW, no packet sockets, or the capture
	// saw none of them).
	AttrUnattributed Attribution = "unattributed"
)

// ChecksumCapture is what a bounded packet capture, started because the
// UDP checksum error counters rose, saw of the incoming UDP packets.
type ChecksumCapture struct {
	// Duration is how long the capture ran.
	Duration time.Duration `json:"duration_ns"`
	// Inspected is how many UDP packets had their checksum verified.
	Inspected uint64 `json:"inspected"`
	// Limited reports that the capture stopped at its packet limit.
	Limited bool `json:"limited,omitempty"`
	// TunnelBad and OtherBad count the bad packets to tunnel ports and to
	// any other port, including the sources beyond the top ones listed.
	TunnelBad uint64 `json:"tunnel_bad"`
	OtherBad  uint64 `json:"other_bad"`
	// Sources are the senders of bad packets, most first, at most
	// MaxChecksumSources of them.
	Sources []BadChecksumSource `json:"sources,omitempty"`
	// CounterDelta is how much the kernel's checksum error counters rose
	// while the capture ran, to compare with what it attributed.
	CounterDelta uint64 `json:"counter_delta"`
	// Err is why the capture could not run; the rise is then unattributed.
	Err Err `json:"error,omitzero"`
}

// MaxChecksumSources bounds the senders a capture lists, and so the
// cardinality of the metrics that name them.
const MaxChecksumSources = 10

// BadChecksumSource is one sender of UDP packets with bad checksums.
type BadChecksumSource struct {
	Addr netip.Addr `json:"addr"`
	// Port is the sender's UDP source port; DstPort the port on this node.
	// A tunnel peer is one sender whatever its source ports (they hash the
	// inner flow): Port is 0 when it used several.
	Port    uint16 `json:"port"`
	DstPort uint16 `json:"dst_port"`
	// Tunnel names the tunnel device that owns DstPort, "" for any other port.
	Tunnel string `json:"tunnel,omitempty"`
	Count  uint64 `json:"count"`
}

// String is "ADDR:PORT -> :DSTPORT", or "ADDR -> :DSTPORT" for a peer
// that used several source ports.
func (b BadChecksumSource) String() string {
	if b.Port == 0 {
		return fmt.Sprintf("%s -> :%d", b.Addr, b.DstPort)
	}
	return fmt.Sprintf("%s -> :%d", netip.AddrPortFrom(b.Addr, b.Port), b.DstPort)
}

// Rose reports whether either checksum error counter rose in the window.
func (u UDP) Rose() bool { return u.Delta > 0 || u.Delta6 > 0 }

// Readable reports whether the counters could be read. IPv6's counter is
// not required where the kernel has no IPv6 (no /proc/net/snmp6).
func (u UDP) Readable() error {
	if u.Err.Failed() {
		return u.Err
	}
	if u.Err6.Failed() && !errors.Is(u.Err6, ErrNotSupported) {
		return u.Err6
	}
	return nil
}

// ChecksumVerdict is the one decision nodetune makes about the UDP checksum
// evidence of a window: quiet, unattributed, or traced to tunnel or other
// ports by a capture. Other ports only when the bad packets the capture saw
// cover the errors the kernel counted while it ran: one it counted but did
// not see may have been a tunnel packet.
func (u UDP) ChecksumVerdict() Attribution {
	if u.Readable() != nil {
		return AttrUnknown
	}
	if !u.Rose() {
		return AttrQuiet
	}
	c := u.Capture
	switch {
	case c == nil || c.Err.Failed():
		return AttrUnattributed
	case c.TunnelBad > 0:
		return AttrTunnel
	case c.OtherBad > 0 && c.OtherBad >= c.CounterDelta:
		return AttrOther
	}
	return AttrUnattributed // including errors counted while the capture ran that it did not see
}

// TunnelSources and OtherSources split the listed senders.
func (c *ChecksumCapture) TunnelSources() []BadChecksumSource { return c.sources(true) }

// OtherSources lists the senders of bad packets to non-tunnel ports.
func (c *ChecksumCapture) OtherSources() []BadChecksumSource { return c.sources(false) }

func (c *ChecksumCapture) sources(tunnel bool) []BadChecksumSource {
	if c == nil {
		return nil
	}
	var out []BadChecksumSource
	for _, s := range c.Sources {
		if (s.Tunnel != "") == tunnel {
			out = append(out, s)
		}
	}
	return out
}

// JoinSources formats senders for a person: "10.0.0.2:4321 -> :4789 (12)".
func JoinSources(srcs []BadChecksumSource) string {
	parts := make([]string, len(srcs))
	for i, s := range srcs {
		parts[i] = fmt.Sprintf("%s (%d)", s, s.Count)
	}
	return strings.Join(parts, ", ")
}

// MinQuietForOffload is how long the checksum error counters must have
// stayed still before nodetune turns tx checksum offload on, when they
// counted bad checksums since boot that nothing attributed.
const MinQuietForOffload = 15 * time.Minute

// OffloadOnBlocked says why the UDP checksum evidence does not allow
// turning tx checksum offload on, or "". A quiet window is enough only on a
// node whose counters never counted a bad checksum since boot: otherwise
// the counters must have stayed still for MinQuietForOffload, because one
// quiet second says nothing about errors that come and go.
func (u UDP) OffloadOnBlocked() string {
	if err := u.Readable(); err != nil {
		return "the UDP checksum error counters could not be read, so nodetune cannot rule the bug out: " + err.Error()
	}
	switch u.ChecksumVerdict() {
	case AttrTunnel:
		return fmt.Sprintf("%d tunnel packets with bad outer checksums arrived from %s; tx checksum offload stays off until that stops",
			u.Capture.TunnelBad, JoinSources(u.Capture.TunnelSources()))
	case AttrUnattributed:
		return fmt.Sprintf("%d UDP packets with bad checksums arrived during the window and could not be traced to their sender; tx checksum offload stays off until that stops",
			u.Delta+u.Delta6)
	}
	// Errors counted before this window were never traced; a window whose
	// rise a capture traced to other ports explains only itself.
	total := u.InCsumErrors + u.InCsumErrors6
	if v := u.ChecksumVerdict(); v == AttrOther {
		total -= min(total, u.Delta+u.Delta6)
	}
	if total > 0 && u.QuietFor < MinQuietForOffload {
		return fmt.Sprintf("%d UDP packets with bad checksums were counted since boot that nothing traced, and the counters have been still for only %s; "+
			"one quiet window is no evidence that they stopped: a running serve turns offload on after %s without a new one; "+
			"or find where they came from (their senders are named while they arrive) and run the fix command yourself",
			total, u.QuietFor.Round(time.Second), MinQuietForOffload)
	}
	return ""
}
