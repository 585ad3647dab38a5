package probes_test

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/probes"
	"github.com/nodetune/nodetune/probes/probestest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// rawSender is a raw IPPROTO_UDP socket in one side of a bed: the kernel
// writes the IP header, the caller the UDP header with any checksum.
type rawSender struct {
	conn     *net.IPConn
	src, dst netip.Addr
}

func newRawSender(t testing.TB, from, to *testbed.Side) *rawSender {
	t.Helper()
	s := &rawSender{src: from.UnderlayIP, dst: to.UnderlayIP}
	if err := from.Do(func() (err error) {
		s.conn, err = net.ListenIP("ip4:udp", &net.IPAddr{IP: from.UnderlayIP.AsSlice()})
		return err
	}); err != nil {
		t.Fatalf("opening a raw socket in %s: %v", from.NS, err)
	}
	t.Cleanup(func() { s.conn.Close() })
	return s
}

func (s *rawSender) send(t testing.TB, sport, dport uint16, payload []byte, csum int) {
	seg := probestest.UDPSegment(s.src, s.dst, sport, dport, payload, csum)
	if _, err := s.conn.WriteToIP(seg, &net.IPAddr{IP: s.dst.AsSlice()}); err != nil {
		t.Errorf("sending: %v", err)
	}
}

// captureIn runs a capture inside side for d and returns its tally.
func captureIn(t testing.TB, side *testbed.Side, ports map[uint16]probes.TunnelPort, d time.Duration) detect.ChecksumCapture {
	t.Helper()
	c, _ := captureTimed(t, side, ports, d)
	return c
}

// captureTimed is captureIn that also returns the CPU time of the thread
// that captured: the receive calls and the verification, not the filter,
// which runs where the packets arrive.
func captureTimed(t testing.TB, side *testbed.Side, ports map[uint16]probes.TunnelPort, d time.Duration) (detect.ChecksumCapture, time.Duration) {
	t.Helper()
	tally := probes.NewChecksumTally(ports)
	var used time.Duration
	if err := side.Do(func() error {
		before := threadCPU(t)
		_, err := probes.AFPacket{}.CaptureUDP(context.Background(), d, 1<<20, tally.Add, func() {})
		used = threadCPU(t) - before
		return err
	}); err != nil {
		t.Fatalf("capturing in %s: %v", side.NS, err)
	}
	return tally.Result(), used
}

// threadCPU is the calling thread's user and system CPU time.
func threadCPU(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestCaptureTracesBadChecksums sends real datagrams from one namespace to
// the other's tunnel port and to another port, with bad, good and zero
// checksums, and checks that the capture names the sender of the bad ones
// and tells the tunnel port from the other. Zero-checksum tunnel packets
// never reach user space (the BPF filter drops them) and good ones verify.
func TestCaptureTracesBadChecksums(t *testing.T) {
	bed := testbedtest.New(t, testbed.Options{})
	tx := newRawSender(t, bed.A, bed.B)
	ports := map[uint16]probes.TunnelPort{4789: {Device: bed.B.Tunnel}}

	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(100 * time.Millisecond) // let the capture start
		for range 5 {
			tx.send(t, 40000, 4789, []byte("bad tunnel packet"), probestest.BadChecksum)
			tx.send(t, 40000, 4789, []byte("zero: no checksum"), probestest.ZeroChecksum)
			tx.send(t, 5353, 9999, []byte("junk"), probestest.BadChecksum)
			tx.send(t, 5353, 9999, []byte("fine"), probestest.GoodChecksum)
		}
	})
	got := captureIn(t, bed.B, ports, 600*time.Millisecond)
	wg.Wait()

	if got.TunnelBad != 5 || got.OtherBad != 5 || got.Inspected != 15 {
		t.Errorf("capture saw %d bad tunnel, %d bad other, %d inspected; want 5, 5, 15: %+v", got.TunnelBad, got.OtherBad, got.Inspected, got)
	}
	want := map[string]detect.BadChecksumSource{
		"tunnel": {Addr: bed.A.UnderlayIP, Port: 40000, DstPort: 4789, Tunnel: bed.B.Tunnel, Count: 5},
		"other":  {Addr: bed.A.UnderlayIP, Port: 5353, DstPort: 9999, Count: 5},
	}
	for _, s := range got.Sources {
		kind := "other"
		if s.Tunnel != "" {
			kind = "tunnel"
		}
		if s != want[kind] {
			t.Errorf("%s source %+v, want %+v", kind, s, want[kind])
		}
		delete(want, kind)
	}
	if len(want) > 0 {
		t.Errorf("sources missing: %+v", want)
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkChecksumCapture measures what a capture costs while 10,000
// tunnel packets per second arrive: the process's CPU time over one second
// of sending with a capture running, minus the same without one
// (capture-cpu-%: filter, copies, receive and verification, but noisy on a
// busy machine), and the CPU time of the capturing thread alone
// (capture-thread-cpu-%: receive calls and verification). The
// packets are sent to the tunnel port with zero checksums (IPv4 VXLAN's
// default, which the BPF filter keeps in the kernel) or with computed
// ones (udpcsum on, which user space verifies).
func BenchmarkChecksumCapture(b *testing.B) {
	bed := testbedtest.New(b, testbed.Options{})
	tx := newRawSender(b, bed.A, bed.B)
	ports := map[uint16]probes.TunnelPort{4789: {Device: bed.B.Tunnel}}
	payload := make([]byte, 1400)
	const pps, second = 10000, time.Second
	send := func(csum int, stop <-chan struct{}) int {
		// Catch up with the clock on every tick, so that a late tick on a
		// busy machine does not lower the rate.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		start, sent := time.Now(), 0
		for {
			select {
			case <-stop:
				return sent
			case now := <-tick.C:
				for due := int(now.Sub(start).Seconds() * pps); sent < due; sent++ {
					tx.send(b, 40000, 4789, payload, csum)
				}
			}
		}
	}
	// measure returns the CPU the process used over a second of sending,
	// with a capture or without, and the packets sent.
	var inspected uint64
	var thread time.Duration
	measure := func(csum int, capture bool) (time.Duration, int) {
		stop := make(chan struct{})
		sentc := make(chan int, 1)
		before := cpuTime(b)
		go func() { sentc <- send(csum, stop) }()
		if capture {
			c, used := captureTimed(b, bed.B, ports, second)
			thread += used
			if c.TunnelBad != 0 {
				b.Errorf("good packets counted bad: %+v", c)
			}
			inspected += c.Inspected
		} else {
			time.Sleep(second)
		}
		close(stop)
		sent := <-sentc
		return cpuTime(b) - before, sent
	}
	for _, tc := range []struct {
		name string
		csum int
	}{{"zero-checksum", probestest.ZeroChecksum}, {"checksummed", probestest.GoodChecksum}} {
		b.Run(tc.name, func(b *testing.B) {
			var extra time.Duration
			var sent int
			inspected, thread = 0, 0
			for range b.N {
				base, _ := measure(tc.csum, false)
				with, n := measure(tc.csum, true)
				extra += with - base
				sent += n
			}
			b.ReportMetric(100*extra.Seconds()/float64(b.N), "capture-cpu-%")
			b.ReportMetric(100*thread.Seconds()/float64(b.N), "capture-thread-cpu-%")
			b.ReportMetric(float64(sent)/float64(b.N), "pkts/s")
			b.ReportMetric(float64(inspected)/float64(b.N), "verified/s")
		})
	}
}

// TestCaptureCountsBridgedPacketsOnce puts the receiver's underlay into a
// bridge, with its address on the bridge, as on nodes whose NIC is a
// bridge port (or a bond slave): a packet socket bound to every device
// sees each datagram on the port and again on the bridge, and the capture
// must count it once, as the kernel does.
func TestCaptureCountsBridgedPacketsOnce(t *testing.T) {
	bed := testbedtest.New(t, testbed.Options{})
	b := bed.B
	nl := b.Netlink()
	ul, err := nl.LinkByName(b.Underlay)
	if err != nil {
		t.Fatal(err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-csum"}}
	if err := nl.LinkAdd(br); err != nil {
		t.Fatalf("adding a bridge in %s: %v", b.NS, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: b.UnderlayIP.AsSlice(), Mask: net.CIDRMask(24, 32)}}
	for _, step := range []func() error{
		func() error { return nl.AddrDel(ul, addr) },
		func() error { return nl.LinkSetMaster(ul, br) },
		func() error { return nl.AddrAdd(br, addr) },
		func() error { return nl.LinkSetUp(br) },
	} {
		if err := step(); err != nil {
			t.Fatalf("bridging %s in %s: %v", b.Underlay, b.NS, err)
		}
	}
	tx := newRawSender(t, bed.A, b)
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(100 * time.Millisecond) // let the capture start
		for range 3 {
			tx.send(t, 5353, 9999, []byte("junk"), probestest.BadChecksum)
		}
	})
	got := captureIn(t, b, nil, 600*time.Millisecond)
	wg.Wait()
	if got.OtherBad != 3 || got.Inspected != 3 {
		t.Errorf("capture saw %d bad of %d inspected, want 3 of 3: %+v", got.OtherBad, got.Inspected, got)
	}
}

// packetSender is a packet socket of type typ on from's underlay, with
// the MAC address of to's underlay to send to.
func packetSender(t *testing.T, from, to *testbed.Side, typ packet.Type, proto int) (*packet.Conn, net.HardwareAddr) {
	t.Helper()
	ul, err := to.Netlink().LinkByName(to.Underlay)
	if err != nil {
		t.Fatal(err)
	}
	var conn *packet.Conn
	if err := from.Do(func() error {
		ifi, err := net.InterfaceByName(from.Underlay)
		if err != nil {
			return err
		}
		conn, err = packet.Listen(ifi, typ, proto, nil)
		return err
	}); err != nil {
		t.Fatalf("packet socket in %s: %v", from.NS, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, ul.Attrs().HardwareAddr
}

// TestCaptureSkipsVLANTaggedFrames sends frames carrying an 802.1Q tag
// into the receiver, whose underlay has no VLAN device. With VLAN 100 the
// kernel drops them (and where a VLAN device exists, its packet socket
// sees them again, untagged, on it): the capture must not count them. A
// priority tag (VLAN 0) is received as untagged, and counted.
func TestCaptureSkipsVLANTaggedFrames(t *testing.T) {
	bed := testbedtest.New(t, testbed.Options{})
	a, b := bed.A, bed.B
	conn, dst := packetSender(t, a, b, packet.Raw, unix.ETH_P_ALL)
	frame := func(vid uint16, dport uint16) []byte {
		ip := probestest.UDPPacket(a.UnderlayIP, b.UnderlayIP, 5353, dport, []byte("tagged"), probestest.BadChecksum)
		f := append(append([]byte{}, dst...), conn.LocalAddr().(*packet.Addr).HardwareAddr...)
		f = append(f, 0x81, 0x00, byte(vid>>8), byte(vid), 0x08, 0x00)
		return append(f, ip...)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(100 * time.Millisecond) // let the capture start
		for range 3 {
			for _, f := range [][]byte{frame(100, 9999), frame(0, 9998)} {
				if _, err := conn.WriteTo(f, &packet.Addr{HardwareAddr: dst}); err != nil {
					t.Errorf("sending: %v", err)
				}
			}
		}
	})
	got := captureIn(t, b, nil, 600*time.Millisecond)
	wg.Wait()
	want := []detect.BadChecksumSource{{Addr: a.UnderlayIP, Port: 5353, DstPort: 9998, Count: 3}}
	if got.OtherBad != 3 || len(got.Sources) != 1 || got.Sources[0] != want[0] {
		t.Errorf("capture %+v: want only the 3 priority-tagged frames to port 9998", got)
	}
}

// TestCaptureSkipsPacketsForOtherHosts sends bad-checksum datagrams to the
// receiver's MAC address but to an IP address it does not have, as pod
// traffic that a node forwards: the node's own UDP counters never count
// them (the pod's namespace would), so the capture must not either. Bad
// datagrams to the node's own address are counted.
func TestCaptureSkipsPacketsForOtherHosts(t *testing.T) {
	bed := testbedtest.New(t, testbed.Options{})
	a, b := bed.A, bed.B
	conn, dst := packetSender(t, a, b, packet.Datagram, unix.ETH_P_IP)
	elsewhere := netip.MustParseAddr("10.203.0.9")
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(100 * time.Millisecond) // let the capture start
		for range 3 {
			for _, to := range []netip.Addr{elsewhere, b.UnderlayIP} {
				pkt := probestest.UDPPacket(a.UnderlayIP, to, 5353, 9999, []byte("junk"), probestest.BadChecksum)
				if _, err := conn.WriteTo(pkt, &packet.Addr{HardwareAddr: dst}); err != nil {
					t.Errorf("sending: %v", err)
				}
			}
		}
	})
	got := captureIn(t, b, nil, 600*time.Millisecond)
	wg.Wait()
	if got.OtherBad != 3 || got.Inspected != 3 {
		t.Errorf("capture %+v: want only the 3 datagrams to %s", got, b.UnderlayIP)
	}
}
