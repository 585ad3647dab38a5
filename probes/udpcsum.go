package probes

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/nodetune/nodetune/detect"
)

// ErrNotUDP marks a captured packet that is not a whole, unfragmented UDP
// datagram over IPv4 or IPv6 (no extension headers), whose checksum
// therefore cannot be verified from the packet alone.
var ErrNotUDP = errors.New("not a whole UDP datagram")

// UDPDatagram is what VerifyUDP reads from a captured packet.
type UDPDatagram struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	// Checksum is the UDP checksum field as sent.
	Checksum uint16
	// Valid reports whether the checksum verifies. A zero checksum over
	// IPv4 means "none" and is valid; over IPv6 it is reported invalid,
	// and the caller decides whether the port accepts it.
	Valid bool
}

// VerifyUDP parses an IPv4 or IPv6 packet, from its IP header on, and
// verifies its UDP checksum over the pseudo-header, the UDP header and
// the payload (RFC 768, RFC 8200 section 8.1). It returns an error wrapping
// ErrNotUDP for anything it cannot verify: another protocol, a fragment,
// IPv6 extension headers, or a packet shorter than its headers say.
func VerifyUDP(pkt []byte) (UDPDatagram, error) {
	if len(pkt) < 1 {
		return UDPDatagram{}, fmt.Errorf("empty packet: %w", ErrNotUDP)
	}
	switch pkt[0] >> 4 {
	case 4:
		return verifyUDP4(pkt)
	case 6:
		return verifyUDP6(pkt)
	}
	return UDPDatagram{}, fmt.Errorf("IP version %d: %w", pkt[0]>>4, ErrNotUDP)
}

func verifyUDP4(pkt []byte) (UDPDatagram, error) {
	if len(pkt) < 20 {
		return UDPDatagram{}, fmt.Errorf("IPv4 header truncated: %w", ErrNotUDP)
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	switch {
	case ihl < 20 || total < ihl || len(pkt) < total:
		return UDPDatagram{}, fmt.Errorf("IPv4 lengths (header %d, total %d, captured %d): %w", ihl, total, len(pkt), ErrNotUDP)
	case pkt[9] != 17:
		return UDPDatagram{}, fmt.Errorf("IPv4 protocol %d: %w", pkt[9], ErrNotUDP)
	case binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0:
		return UDPDatagram{}, fmt.Errorf("IPv4 fragment: %w", ErrNotUDP)
	}
	src, _ := netip.AddrFromSlice(pkt[12:16])
	dst, _ := netip.AddrFromSlice(pkt[16:20])
	d, udp, err := udpHeader(pkt[ihl:total], src, dst)
	if err != nil {
		return d, err
	}
	if d.Checksum == 0 {
		d.Valid = true // no checksum: allowed over IPv4
		return d, nil
	}
	sum := sumBytes(0, pkt[12:20])
	sum += 17 + uint32(len(udp))
	d.Valid = fold(sumBytes(sum, udp)) == 0xffff
	return d, nil
}

func verifyUDP6(pkt []byte) (UDPDatagram, error) {
	if len(pkt) < 40 {
		return UDPDatagram{}, fmt.Errorf("IPv6 header truncated: %w", ErrNotUDP)
	}
	payload := int(binary.BigEndian.Uint16(pkt[4:6]))
	switch {
	case pkt[6] != 17:
		return UDPDatagram{}, fmt.Errorf("IPv6 next header %d: %w", pkt[6], ErrNotUDP)
	case len(pkt) < 40+payload:
		return UDPDatagram{}, fmt.Errorf("IPv6 payload %d, captured %d: %w", payload, len(pkt)-40, ErrNotUDP)
	}
	src, _ := netip.AddrFromSlice(pkt[8:24])
	dst, _ := netip.AddrFromSlice(pkt[24:40])
	d, udp, err := udpHeader(pkt[40:40+payload], src, dst)
	if err != nil || d.Checksum == 0 {
		return d, err // zero is invalid over IPv6 unless the port allows it
	}
	sum := sumBytes(0, pkt[8:40])
	sum += uint32(len(udp)) + 17
	d.Valid = fold(sumBytes(sum, udp)) == 0xffff
	return d, nil
}

// udpHeader reads the UDP header at the start of b and returns the datagram
// as its length field bounds it.
func udpHeader(b []byte, src, dst netip.Addr) (UDPDatagram, []byte, error) {
	if len(b) < 8 {
		return UDPDatagram{}, nil, fmt.Errorf("UDP header truncated: %w", ErrNotUDP)
	}
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if n < 8 || n > len(b) {
		return UDPDatagram{}, nil, fmt.Errorf("UDP length %d of %d bytes: %w", n, len(b), ErrNotUDP)
	}
	d := UDPDatagram{
		Src: src, Dst: dst,
		SrcPort:  binary.BigEndian.Uint16(b[0:2]),
		DstPort:  binary.BigEndian.Uint16(b[2:4]),
		Checksum: binary.BigEndian.Uint16(b[6:8]),
	}
	return d, b[:n], nil
}

// sumBytes adds b to sum as big-endian 16-bit words, padding an odd end.
func sumBytes(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// fold folds the carries of a one's complement sum into 16 bits.
func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// TunnelPort is a UDP port that a tunnel device of this node listens on.
type TunnelPort struct {
	Device string
	// ZeroCsum6Rx reports whether the device accepts zero checksums over IPv6.
	ZeroCsum6Rx bool
	// IPv6 is the IPv6 device that shares the port with an IPv4 one, as on
	// dual-stack nodes (Calico's vxlan-v6.calico, flannel's flannel-v6.1):
	// IPv6 packets to the port are its. Nil when there is none.
	IPv6 *TunnelPort

	ipv6 bool
}

// of returns the device of the port that receives d.
func (tp TunnelPort) of(d UDPDatagram) TunnelPort {
	if tp.IPv6 != nil && d.Src.Is6() {
		return *tp.IPv6
	}
	return tp
}

// Linux's default VXLAN port, when a device was created without one, and
// the IANA Geneve port.
const (
	defaultVXLANPort  = 8472
	defaultGenevePort = 6081
)

// TunnelPorts maps the destination ports of the UDP tunnels in t to their
// devices.
func TunnelPorts(t detect.Tunnels) map[uint16]TunnelPort {
	out := map[uint16]TunnelPort{}
	for _, d := range t.Devices {
		port := d.Port
		switch {
		case d.Kind == detect.KindVXLAN && port == 0:
			port = defaultVXLANPort
		case d.Kind == detect.KindGeneve && port == 0:
			port = defaultGenevePort
		case d.Kind != detect.KindVXLAN && d.Kind != detect.KindGeneve:
			continue
		}
		if port <= 0 || port > 0xffff {
			continue
		}
		tp := TunnelPort{Device: d.Name, ipv6: d.IPv6}
		if d.OuterChecksum != nil {
			tp.ZeroCsum6Rx = d.OuterChecksum.ZeroCsum6Rx
		}
		had, dup := out[uint16(port)]
		switch {
		case !dup:
			out[uint16(port)] = tp
		case had.ipv6 && !tp.ipv6: // an IPv4 device on an IPv6 one's port
			tp.IPv6 = &had
			out[uint16(port)] = tp
		case !had.ipv6 && tp.ipv6 && had.IPv6 == nil:
			had.IPv6 = &tp
			out[uint16(port)] = had
		}
	}
	return out
}

// ChecksumTally counts the bad UDP checksums of captured packets by sender
// and port. Its memory is bounded: past maxTallyKeys distinct senders, new
// ones are counted but not named.
type ChecksumTally struct {
	ports     map[uint16]TunnelPort
	counts    map[tallyKey]*tallied
	Inspected uint64
	tunnelBad uint64
	otherBad  uint64
}

// tallyKey is a sender: its address and port and the port on this node.
// Tunnel packets are keyed without their source port, which senders set
// from a hash of the inner flow, so that one peer is one sender.
type tallyKey struct {
	src    netip.Addr
	sport  uint16
	dport  uint16
	tunnel string
}

// tallied counts a sender's bad packets; for a tunnel peer, sport is its
// one source port, or 0 once it used several.
type tallied struct {
	n     uint64
	sport uint16
}

// maxTallyKeys bounds the distinct senders a tally keeps.
const maxTallyKeys = 4096

// NewChecksumTally returns a tally that knows ports as tunnel ports.
func NewChecksumTally(ports map[uint16]TunnelPort) *ChecksumTally {
	return &ChecksumTally{ports: ports, counts: map[tallyKey]*tallied{}}
}

// Add verifies one captured packet and counts it if its checksum is bad.
// Packets that are not whole UDP datagrams are ignored.
func (t *ChecksumTally) Add(pkt []byte) {
	d, err := VerifyUDP(pkt)
	if err != nil {
		return
	}
	t.Inspected++
	tp, tunnel := t.ports[d.DstPort]
	tp = tp.of(d)
	if d.Valid || (d.Checksum == 0 && tunnel && tp.ZeroCsum6Rx) { // zero over IPv6 where the tunnel accepts it
		return
	}
	k := tallyKey{src: d.Src, sport: d.SrcPort, dport: d.DstPort}
	if tunnel {
		k.tunnel, k.sport = tp.Device, 0
		t.tunnelBad++
	} else {
		t.otherBad++
	}
	c, ok := t.counts[k]
	if !ok {
		if len(t.counts) >= maxTallyKeys {
			return // counted above, not named
		}
		c = &tallied{sport: d.SrcPort}
		t.counts[k] = c
	}
	c.n++
	if c.sport != d.SrcPort {
		c.sport = 0
	}
}

// Result returns what the tally saw, with its top senders.
func (t *ChecksumTally) Result() detect.ChecksumCapture {
	c := detect.ChecksumCapture{Inspected: t.Inspected, TunnelBad: t.tunnelBad, OtherBad: t.otherBad}
	for k, n := range t.counts {
		c.Sources = append(c.Sources, detect.BadChecksumSource{Addr: k.src, Port: n.sport, DstPort: k.dport, Tunnel: k.tunnel, Count: n.n})
	}
	slices.SortFunc(c.Sources, func(a, b detect.BadChecksumSource) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port), cmp.Compare(a.DstPort, b.DstPort))
	})
	if len(c.Sources) > detect.MaxChecksumSources {
		c.Sources = c.Sources[:detect.MaxChecksumSources]
	}
	return c
}
