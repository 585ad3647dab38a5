package testbed

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nodetune/nodetune/detect"
)

// DefaultPrefix is the namespace name prefix used when Options.Prefix is empty.
const DefaultPrefix = "ntb"

// UnderlayName is the name of the veth end in each namespace.
const UnderlayName = "eth0"

// Encapsulation overhead of each kind over an IPv4 underlay, in bytes:
// outer IPv4 (20), UDP (8) and the tunnel header with the inner Ethernet
// header (8+14) for VXLAN and Geneve; the outer IPv4 header alone for IPIP.
var overhead = map[string]int{
	detect.KindVXLAN:  50,
	detect.KindGeneve: 50,
	detect.KindIPIP:   20,
}

// Overhead is the encapsulation overhead of kind over an IPv4 underlay in
// bytes, or 0 for a kind the testbed cannot build.
func Overhead(kind string) int { return overhead[kind] }

// Options describe the bed to build. The zero value is a VXLAN bed.
type Options struct {
	// Prefix starts each namespace name (default "ntb"). The full name is
	// Prefix-<pid>-<n>-a (and -b), so leftovers can be found by Sweep.
	Prefix string
	// Kind is the tunnel kind: "vxlan" (default), "geneve" or "ipip".
	Kind string
	// TunnelName is the tunnel device's name in both namespaces; the
	// default is "vxlan0", "gnv0" or "ipip0". Callers may pass a CNI's
	// name such as "vxlan.calico", "flannel.1" or "cilium_vxlan".
	TunnelName string
	// UnderlayMTU is the MTU of the veth pair (default 1500).
	UnderlayMTU int
	// TunnelMTU is the tunnel's MTU (default: UnderlayMTU minus the
	// encapsulation overhead of Kind).
	TunnelMTU int
	// VNI is the VXLAN or Geneve network identifier (default 42).
	VNI int
	// Port is the VXLAN or Geneve UDP port (default 4789, 6081 for Geneve).
	Port int
}

// Bed is a built testbed: two sides joined by an underlay and a tunnel.
type Bed struct {
	// A is the sending side, B the receiving side; the roles are only names.
	A, B *Side
	// Kind is the tunnel kind that was built.
	Kind string

	closeOnce sync.Once
	closeErr  error
}

// Side is one namespace of a bed and the devices in it.
type Side struct {
	// NS is the network namespace's name, as `ip netns` lists it.
	NS string
	// Underlay and Tunnel are the device names inside NS.
	Underlay, Tunnel string
	// UnderlayIP and TunnelIP are this side's IPv4 addresses on them.
	UnderlayIP, TunnelIP netip.Addr

	ns      netns.NsHandle
	nl      *netlink.Handle
	et      *ethtool.Ethtool
	mounted bool
}

// seq numbers the beds of this process.
var seq atomic.Uint64

// withDefaults fills in the defaults and checks o.
func (o Options) withDefaults() (Options, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Kind == "" {
		o.Kind = detect.KindVXLAN
	}
	if _, ok := overhead[o.Kind]; !ok {
		return o, fmt.Errorf("testbed: tunnel kind %q: want vxlan, geneve or ipip: %w", o.Kind, detect.ErrNotSupported)
	}
	if o.TunnelName == "" {
		o.TunnelName = map[string]string{detect.KindVXLAN: "vxlan0", detect.KindGeneve: "gnv0", detect.KindIPIP: "ipip0"}[o.Kind]
	}
	if len(o.TunnelName) >= 16 || o.TunnelName == UnderlayName || o.TunnelName == "lo" {
		return o, fmt.Errorf("testbed: tunnel name %q is not a usable device name", o.TunnelName)
	}
	if o.UnderlayMTU == 0 {
		o.UnderlayMTU = 1500
	}
	if o.TunnelMTU == 0 {
		o.TunnelMTU = o.UnderlayMTU - overhead[o.Kind]
	}
	if o.TunnelMTU < 576 || o.UnderlayMTU < 576 {
		return o, fmt.Errorf("testbed: MTU %d (underlay %d) is too small", o.TunnelMTU, o.UnderlayMTU)
	}
	if o.VNI == 0 {
		o.VNI = 42
	}
	if o.Port == 0 {
		o.Port = 4789
		if o.Kind == detect.KindGeneve {
			o.Port = 6081
		}
	}
	return o, nil
}

// New builds a bed. On failure it removes whatever it had built; an error
// that comes from missing privilege or a missing kernel feature wraps
// detect.ErrPermission or detect.ErrNotSupported.
func New(opts Options) (*Bed, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	n := seq.Add(1)
	base := fmt.Sprintf("%s-%d-%d", o.Prefix, os.Getpid(), n)
	b := &Bed{Kind: o.Kind}
	b.A = &Side{NS: base + "-a", Underlay: UnderlayName, Tunnel: o.TunnelName,
		UnderlayIP: netip.MustParseAddr("10.201.0.1"), TunnelIP: netip.MustParseAddr("10.202.0.1")}
	b.B = &Side{NS: base + "-b", Underlay: UnderlayName, Tunnel: o.TunnelName,
		UnderlayIP: netip.MustParseAddr("10.201.0.2"), TunnelIP: netip.MustParseAddr("10.202.0.2")}
	if err := b.build(o); err != nil {
		if cerr := b.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("removing the half-built testbed: %w", cerr))
		}
		return nil, err
	}
	return b, nil
}

// build creates the namespaces, the underlay and the tunnel.
func (b *Bed) build(o Options) error {
	for _, s := range []*Side{b.A, b.B} {
		if err := s.create(); err != nil {
			return err
		}
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: UnderlayName, MTU: o.UnderlayMTU},
		PeerName:      UnderlayName,
		PeerNamespace: netlink.NsFd(b.B.ns),
	}
	if err := b.A.nl.LinkAdd(veth); err != nil {
		return classify("creating the veth pair", err)
	}
	for _, pair := range [][2]*Side{{b.A, b.B}, {b.B, b.A}} {
		s, peer := pair[0], pair[1]
		ul, err := s.configure(UnderlayName, s.UnderlayIP)
		if err != nil {
			return err
		}
		tun := tunnelLink(o, ul.Attrs().Index, s.UnderlayIP, peer.UnderlayIP)
		if err := s.nl.LinkAdd(tun); err != nil {
			return classify(fmt.Sprintf("creating %s device %s in %s (kernel support for %s devices)", o.Kind, o.TunnelName, s.NS, o.Kind), err)
		}
		if _, err := s.configure(o.TunnelName, s.TunnelIP); err != nil {
			return err
		}
	}
	return nil
}

// tunnelLink describes the tunnel device of one side.
func tunnelLink(o Options, underlay int, local, remote netip.Addr) netlink.Link {
	attrs := netlink.LinkAttrs{Name: o.TunnelName, MTU: o.TunnelMTU}
	l, r := net.IP(local.AsSlice()), net.IP(remote.AsSlice())
	switch o.Kind {
	case detect.KindGeneve:
		// Geneve binds to no device; the route to the peer picks the underlay.
		return &netlink.Geneve{LinkAttrs: attrs, ID: uint32(o.VNI), Remote: r, Dport: uint16(o.Port)}
	case detect.KindIPIP:
		return &netlink.Iptun{LinkAttrs: attrs, Link: uint32(underlay), Local: l, Remote: r, PMtuDisc: 1}
	default:
		return &netlink.Vxlan{LinkAttrs: attrs, VxlanId: o.VNI, VtepDevIndex: underlay,
			SrcAddr: l, Group: r, Port: o.Port, Learning: true}
	}
}

// Close removes both namespaces and with them every device of the bed.
// It is safe to call more than once; later calls return the first result.
func (b *Bed) Close() error {
	b.closeOnce.Do(func() {
		var errs []error
		for _, s := range []*Side{b.A, b.B} {
			if s != nil {
				errs = append(errs, s.close())
			}
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// Sides returns A and B, for loops over both.
func (b *Bed) Sides() []*Side { return []*Side{b.A, b.B} }
