package probes_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/probes"
	"github.com/nodetune/nodetune/probes/probestest"
)

var (
	peer4 = netip.MustParseAddr("192.0.2.7")
	node4 = netip.MustParseAddr("192.0.2.1")
	junk4 = netip.MustParseAddr("198.51.100.9")
	peer6 = netip.MustParseAddr("2001:db8::7")
	node6 = netip.MustParseAddr("2001:db8::1")
)

func TestVerifyUDP(t *testing.T) {
	odd := []byte("odd-length payload")
	tests := []struct {
		name  string
		pkt   []byte
		valid bool
		err   bool
	}{
		{"IPv4 good", probestest.UDPPacket(peer4, node4, 1000, 4789, odd, probestest.GoodChecksum), true, false},
		{"IPv4 bad", probestest.UDPPacket(peer4, node4, 1000, 4789, odd, probestest.BadChecksum), false, false},
		{"IPv4 zero is none", probestest.UDPPacket(peer4, node4, 1000, 4789, odd, probestest.ZeroChecksum), true, false},
		{"IPv4 empty payload", probestest.UDPPacket(peer4, node4, 1000, 53, nil, probestest.GoodChecksum), true, false},
		{"IPv6 good", probestest.UDPPacket(peer6, node6, 1000, 4789, odd, probestest.GoodChecksum), true, false},
		{"IPv6 bad", probestest.UDPPacket(peer6, node6, 1000, 4789, odd, probestest.BadChecksum), false, false},
		{"IPv6 zero is invalid", probestest.UDPPacket(peer6, node6, 1000, 4789, odd, probestest.ZeroChecksum), false, false},
		{"truncated", probestest.UDPPacket(peer4, node4, 1000, 4789, odd, probestest.GoodChecksum)[:30], false, true},
		{"empty", nil, false, true},
		{"IPv4 fragment", func() []byte {
			p := probestest.UDPPacket(peer4, node4, 1000, 4789, odd, probestest.GoodChecksum)
			p[6] = 0x20 // more fragments
			return p
		}(), false, true},
		{"TCP", func() []byte {
			p := probestest.UDPPacket(peer4, node4, 1000, 4789, odd, probestest.GoodChecksum)
			p[9] = 6
			return p
		}(), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := probes.VerifyUDP(tt.pkt)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err != nil {
				if !errors.Is(err, probes.ErrNotUDP) {
					t.Errorf("err = %v, want ErrNotUDP", err)
				}
				return
			}
			if d.Valid != tt.valid {
				t.Errorf("valid = %v, want %v", d.Valid, tt.valid)
			}
			if d.SrcPort != 1000 {
				t.Errorf("source port = %d", d.SrcPort)
			}
		})
	}
}

func TestChecksumTally(t *testing.T) {
	ports := probes.TunnelPorts(detect.Tunnels{Devices: []detect.Tunnel{
		{Name: "vxlan0", Kind: detect.KindVXLAN, Port: 4789},
		{Name: "v6zero", Kind: detect.KindVXLAN, Port: 4790, IPv6: true, OuterChecksum: &detect.OuterChecksum{ZeroCsum6Rx: true}},
		{Name: "flannel.1", Kind: detect.KindVXLAN}, // no port: Linux's default 8472
		{Name: "ipip0", Kind: detect.KindIPIP},
		// Dual stack: an IPv6 device on the IPv4 one's port, listed first,
		// that accepts zero checksums (Calico's vxlan-v6.calico, flannel-v6.1).
		{Name: "v6twin", Kind: detect.KindVXLAN, Port: 4791, IPv6: true, OuterChecksum: &detect.OuterChecksum{ZeroCsum6Rx: true}},
		{Name: "v4twin", Kind: detect.KindVXLAN, Port: 4791, OuterChecksum: &detect.OuterChecksum{UDPCsum: true}},
	}})
	tally := probes.NewChecksumTally(ports)
	add := func(n int, pkt []byte) {
		for range n {
			tally.Add(pkt)
		}
	}
	add(5, probestest.UDPPacket(peer4, node4, 40000, 4789, []byte("tunnel"), probestest.BadChecksum))
	add(2, probestest.UDPPacket(peer4, node4, 40001, 8472, []byte("tunnel"), probestest.BadChecksum))
	add(3, probestest.UDPPacket(junk4, node4, 5353, 9999, []byte("junk"), probestest.BadChecksum))
	add(4, probestest.UDPPacket(peer4, node4, 40000, 4789, []byte("tunnel"), probestest.ZeroChecksum))
	add(4, probestest.UDPPacket(peer4, node4, 40000, 4789, []byte("tunnel"), probestest.GoodChecksum))
	add(1, probestest.UDPPacket(peer6, node6, 40000, 4790, []byte("zero allowed"), probestest.ZeroChecksum))
	add(1, probestest.UDPPacket(peer6, node6, 40000, 4789, []byte("zero not allowed"), probestest.ZeroChecksum))
	add(2, probestest.UDPPacket(peer6, node6, 40000, 4791, []byte("zero allowed by v6twin"), probestest.ZeroChecksum))
	add(2, probestest.UDPPacket(peer6, node6, 40000, 4791, []byte("bad to v6twin"), probestest.BadChecksum))
	add(2, probestest.UDPPacket(peer4, node4, 40000, 4791, []byte("bad to v4twin"), probestest.BadChecksum))
	add(1, []byte{0x45, 0}) // not UDP: not inspected
	want := detect.ChecksumCapture{
		Inspected: 26, TunnelBad: 12, OtherBad: 3,
		Sources: []detect.BadChecksumSource{
			{Addr: peer4, Port: 40000, DstPort: 4789, Tunnel: "vxlan0", Count: 5},
			{Addr: junk4, Port: 5353, DstPort: 9999, Count: 3},
			{Addr: peer4, Port: 40000, DstPort: 4791, Tunnel: "v4twin", Count: 2},
			{Addr: peer4, Port: 40001, DstPort: 8472, Tunnel: "flannel.1", Count: 2},
			{Addr: peer6, Port: 40000, DstPort: 4791, Tunnel: "v6twin", Count: 2},
			{Addr: peer6, Port: 40000, DstPort: 4789, Tunnel: "vxlan0", Count: 1},
		},
	}
	if diff := cmp.Diff(want, tally.Result(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b detect.Err) bool { return a.Error() == b.Error() })); diff != "" {
		t.Errorf("tally (-want +got):\n%s", diff)
	}
}

func TestChecksumTallyListsTopSenders(t *testing.T) {
	tally := probes.NewChecksumTally(nil)
	for i := range 50 {
		src := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
		for range i + 1 {
			tally.Add(probestest.UDPPacket(src, node4, 1, 53, nil, probestest.BadChecksum))
		}
	}
	c := tally.Result()
	if len(c.Sources) != detect.MaxChecksumSources || c.Sources[0].Addr != netip.MustParseAddr("10.0.0.49") || c.OtherBad != 50*51/2 {
		t.Errorf("top senders = %+v, other bad %d", c.Sources, c.OtherBad)
	}
}

func FuzzVerifyUDP(f *testing.F) {
	f.Add(probestest.UDPPacket(peer4, node4, 1, 2, []byte("x"), probestest.GoodChecksum))
	f.Add(probestest.UDPPacket(peer6, node6, 1, 2, []byte("xy"), probestest.BadChecksum))
	f.Add([]byte{0x45})
	f.Add([]byte{0x60, 0, 0, 0, 0xff, 0xff, 17})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		d, err := probes.VerifyUDP(pkt)
		if err != nil && !errors.Is(err, probes.ErrNotUDP) {
			t.Fatalf("error %v does not wrap ErrNotUDP", err)
		}
		if err == nil && !d.Src.IsValid() {
			t.Fatalf("a verified datagram without a source: %+v", d)
		}
		probes.NewChecksumTally(nil).Add(pkt)
	})
}
