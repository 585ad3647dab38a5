package probestest

import (
	"encoding/binary"
	"net/netip"
)

// Checksum choices for UDP.
const (
	// GoodChecksum writes the correct UDP checksum.
	GoodChecksum = iota
	// BadChecksum writes the correct checksum plus one, never zero.
	BadChecksum
	// ZeroChecksum writes zero: "none" over IPv4, invalid over IPv6
	// unless the receiver allows it.
	ZeroChecksum
)

// UDPSegment returns a UDP header and payload from src:sport to dst:dport,
// with the checksum chosen by csum (GoodChecksum, BadChecksum or
// ZeroChecksum), as a raw IPPROTO_UDP socket sends it.
func UDPSegment(src, dst netip.Addr, sport, dport uint16, payload []byte, csum int) []byte {
	seg := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(seg[0:], sport)
	binary.BigEndian.PutUint16(seg[2:], dport)
	binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
	copy(seg[8:], payload)
	// The one's complement sum of the pseudo-header and the segment,
	// computed word by word as RFC 1071 describes.
	var words []byte
	words = append(words, src.AsSlice()...)
	words = append(words, dst.AsSlice()...)
	if src.Is4() {
		words = append(words, 0, 17, byte(len(seg)>>8), byte(len(seg)))
	} else {
		words = binary.BigEndian.AppendUint32(words, uint32(len(seg)))
		words = append(words, 0, 0, 0, 17)
	}
	words = append(words, seg...)
	if len(words)%2 == 1 {
		words = append(words, 0)
	}
	var sum uint64
	for i := 0; i < len(words); i += 2 {
		sum += uint64(words[i])<<8 | uint64(words[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	switch csum {
	case BadChecksum:
		c++
		if c == 0 {
			c = 1
		}
	case ZeroChecksum:
		c = 0
	}
	binary.BigEndian.PutUint16(seg[6:], c)
	return seg
}

// UDPPacket returns a whole IPv4 or IPv6 packet (by src's family) that
// carries UDPSegment's datagram, as a packet socket captures it.
func UDPPacket(src, dst netip.Addr, sport, dport uint16, payload []byte, csum int) []byte {
	seg := UDPSegment(src, dst, sport, dport, payload, csum)
	if src.Is4() {
		h := make([]byte, 20)
		h[0], h[8], h[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(seg)))
		copy(h[12:], src.AsSlice())
		copy(h[16:], dst.AsSlice())
		return append(h, seg...)
	}
	h := make([]byte, 40)
	h[0], h[6], h[7] = 0x60, 17, 64
	binary.BigEndian.PutUint16(h[4:], uint16(len(seg)))
	copy(h[8:], src.AsSlice())
	copy(h[24:], dst.AsSlice())
	return append(h, seg...)
}
