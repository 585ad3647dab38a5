package probes

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
	"unsafe"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/nodetune/nodetune/detect"
)

// PacketCapture captures the UDP packets arriving in the network namespace
// for at most d and limit packets, and hands each to each from its IP
// header on. It skips packets whose checksum the kernel has not computed
// yet (CHECKSUM_PARTIAL, from a local sender) or that the NIC verified:
// neither can be a bad checksum the kernel counts. It calls mark once it
// receives packets, and again when its time is up, before it reads the
// packets queued by then: counters read at the two marks count only
// packets the capture saw.
type PacketCapture interface {
	CaptureUDP(ctx context.Context, d time.Duration, limit int, each func(pkt []byte), mark func()) (limited bool, err error)
}

// AFPacket is the PacketCapture of a real host: an AF_PACKET socket with a
// classic BPF filter. It needs CAP_NET_RAW.
type AFPacket struct{}

// linux/if_packet.h: the packet type of a frame this host sent.
const packetOutgoing = 4

// UDPChecksumFilter is the classic BPF program of the capture, for a
// SOCK_DGRAM packet socket (offsets start at the network header). It passes
// only incoming, unfragmented UDP that still carries no VLAN tag (a frame
// tagged with a VLAN id is seen again, untagged, on its VLAN device, or is
// dropped by the kernel where there is none; a priority tag, VLAN 0, is
// received as untagged): over IPv4 only with a non-zero checksum,
// since zero means none there and is always valid, which keeps the default
// zero-checksum VXLAN traffic in the kernel; over IPv6 UDP without
// extension headers.
func UDPChecksumFilter() ([]bpf.RawInstruction, error) {
	const accept, drop = 0x40000, 0
	return bpf.Assemble([]bpf.Instruction{
		/* 0 */ bpf.LoadExtension{Num: bpf.ExtType},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: packetOutgoing, SkipTrue: 16},
		/* 2 */ bpf.LoadExtension{Num: bpf.ExtVLANTag},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x0fff, SkipTrue: 14},
		/* 4 */ bpf.LoadExtension{Num: bpf.ExtProto},
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.ETH_P_IP, SkipFalse: 8},
		/* 6 */ bpf.LoadAbsolute{Off: 9, Size: 1},
		/* 7 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_UDP, SkipFalse: 10},
		/* 8 */ bpf.LoadAbsolute{Off: 6, Size: 2},
		/* 9 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x3fff, SkipTrue: 8},
		/* 10 */ bpf.LoadMemShift{Off: 0},
		/* 11 */ bpf.LoadIndirect{Off: 6, Size: 2},
		/* 12 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 5},
		/* 13 */ bpf.RetConstant{Val: accept},
		/* 14 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.ETH_P_IPV6, SkipFalse: 3},
		/* 15 */ bpf.LoadAbsolute{Off: 6, Size: 1},
		/* 16 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_UDP, SkipFalse: 1},
		/* 17 */ bpf.RetConstant{Val: accept},
		/* 18 */ bpf.RetConstant{Val: drop},
	})
}

// CaptureUDP implements PacketCapture.
func (AFPacket) CaptureUDP(ctx context.Context, d time.Duration, limit int, each func(pkt []byte), mark func()) (bool, error) {
	filter, err := UDPChecksumFilter()
	if err != nil {
		return false, fmt.Errorf("assembling the capture filter: %w", err)
	}
	// Index 0 binds to every device of the network namespace.
	c, err := packet.Listen(&net.Interface{Index: 0}, packet.Datagram, unix.ETH_P_ALL, &packet.Config{Filter: filter})
	if err != nil {
		return false, classify("opening a packet socket", err)
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return false, classify("opening a packet socket", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_AUXDATA, 1)
		// A larger buffer rides out bursts while the verifier catches up;
		// the kernel caps it at net.core.rmem_max.
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, captureBuffer)
	}); err != nil || serr != nil {
		return false, classify("asking the packet socket for checksum status", errors.Join(err, serr))
	}
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := c.SetReadDeadline(deadline); err != nil {
		return false, fmt.Errorf("capturing: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	lower, local := lowerDevices(), localAddrs()
	mark()

	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{}))))
	var n, oobn int
	var from unix.Sockaddr
	var rerr error
	recv := func(fd uintptr) bool {
		n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		return !errors.Is(rerr, unix.EAGAIN)
	}
	draining := false
	for seen := 0; seen < limit; seen++ {
		var err error
		if draining {
			err = rc.Control(func(fd uintptr) { recv(fd) })
		} else {
			err = rc.Read(recv)
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			mark() // time is up: read what was queued by now, and no more
			draining, seen = true, seen-1
			continue
		case draining && errors.Is(rerr, unix.EAGAIN):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("capturing: %w", err)
		case rerr != nil:
			return false, fmt.Errorf("capturing: %w", rerr)
		case n > len(buf):
			continue // longer than any datagram it can verify
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && lower[ll.Ifindex] {
			continue // seen again on its master
		}
		if skipChecksum(oob[:oobn]) || !forThisHost(buf[:n], local) {
			continue
		}
		each(buf[:n])
	}
	return true, nil
}

// lowerDevices are the devices of the calling thread's network namespace
// whose packets a packet socket bound to every device sees twice, on the
// device and again on its master: bridge ports, bond and team slaves and
// Open vSwitch ports. A packet such a device receives for this node reaches
// the UDP layer through the master; one the master does not pass up is not
// counted by the kernel either. A VRF's devices are not among them (the VRF
// device shows their packets only to sockets bound to it). Where the links
// cannot be listed, none is skipped: packets may then be counted twice.
func lowerDevices() map[int]bool {
	links, err := netlink.LinkList()
	if err != nil {
		return nil
	}
	kind := map[int]string{}
	for _, l := range links {
		kind[l.Attrs().Index] = l.Type()
	}
	lower := map[int]bool{}
	for _, l := range links {
		switch kind[l.Attrs().MasterIndex] {
		case "bridge", "bond", "team", "openvswitch":
			lower[l.Attrs().Index] = true
		}
	}
	return lower
}

// localAddrs are the addresses of the calling thread's network namespace,
// with their broadcast addresses; nil where they cannot be listed.
func localAddrs() map[netip.Addr]bool {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil
	}
	out := map[netip.Addr]bool{}
	for _, a := range addrs {
		for _, ip := range []net.IP{a.IP, a.Broadcast} {
			if addr, ok := netip.AddrFromSlice(ip); ok {
				out[addr.Unmap()] = true
			}
		}
	}
	return out
}

// forThisHost reports whether pkt (from its IP header on) is addressed to
// this network namespace: to one of its addresses, a broadcast or a
// multicast group. A datagram the node forwards (to a pod) is counted by
// the pod's namespace, not this one's counters, and is not the capture's
// business. With local unknown (nil) every packet is.
func forThisHost(pkt []byte, local map[netip.Addr]bool) bool {
	if local == nil {
		return true
	}
	var dst netip.Addr
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		dst = netip.AddrFrom4([4]byte(pkt[16:20]))
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		dst = netip.AddrFrom16([16]byte(pkt[24:40]))
	default:
		return true // VerifyUDP rejects it
	}
	return local[dst] || dst.IsMulticast() || dst == netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// skipChecksum reports whether the packet's auxiliary data says its
// checksum is not ready yet (TP_STATUS_CSUMNOTREADY) or was verified by
// the device (TP_STATUS_CSUM_VALID, Linux 3.15+).
func skipChecksum(oob []byte) bool {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= 4 {
			status := binary.NativeEndian.Uint32(m.Data[:4])
			return status&(unix.TP_STATUS_CSUMNOTREADY|unix.TP_STATUS_CSUM_VALID) != 0
		}
	}
	return false
}

// captureBuffer is the receive buffer the capture asks for, in bytes.
const captureBuffer = 4 << 20

// Capture limits: a capture runs while the counters are known to rise, and
// stops at whichever comes first.
const (
	DefaultCaptureDuration = time.Second
	DefaultCapturePackets  = 20000
)

// traceChecksums captures the UDP packets arriving now and counts the bad
// ones by sender and port, then reads the counters again to say how much
// they rose meanwhile.
func (p *Prober) traceChecksums(ctx context.Context, tunnels detect.Tunnels) *detect.ChecksumCapture {
	h := p.host
	if h.Capture == nil {
		return &detect.ChecksumCapture{Err: detect.Fail(fmt.Errorf("no packet capture on this host: %w", detect.ErrNotSupported))}
	}
	var before, after *sample
	mark := func() {
		if before == nil {
			before = h.sample(p.Clock())
		} else {
			after = h.sample(p.Clock())
		}
	}
	tally := NewChecksumTally(TunnelPorts(tunnels))
	start := p.Clock()
	limited, err := h.Capture.CaptureUDP(ctx, p.CaptureDuration, p.CapturePackets, tally.Add, mark)
	c := tally.Result()
	c.Duration, c.Limited = p.Clock().Sub(start).Round(time.Millisecond), limited
	if err != nil {
		c.Err = detect.Fail(err)
		return &c
	}
	if before == nil {
		return &detect.ChecksumCapture{Err: detect.Fail(errors.New("the capture never said when it started"))}
	}
	if after == nil { // stopped at its packet limit
		mark()
	}
	if before.udpErr == nil && after.udpErr == nil {
		c.CounterDelta = sub(after.udpCsum, before.udpCsum)
	}
	if before.udp6Err == nil && after.udp6Err == nil {
		c.CounterDelta += sub(after.udp6Csum, before.udp6Csum)
	}
	return &c
}
