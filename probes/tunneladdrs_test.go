package probes

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nodetune/nodetune/detect"
)

// addrNetlink has an unbound VXLAN device over eth0, and lists eth0's
// addresses (or fails to).
type addrNetlink struct {
	local net.IP
	addrs []string
	err   error
}

func (n *addrNetlink) LinkList() ([]netlink.Link, error) {
	return []netlink.Link{
		&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "eth0", Index: 2, MTU: 1500}},
		&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vxlan0", Index: 3, MTU: 1450}, VtepDevIndex: 2, Port: 4789, SrcAddr: n.local},
	}, nil
}

func (n *addrNetlink) RouteList(netlink.Link, int) ([]netlink.Route, error) { return nil, nil }

func (n *addrNetlink) AddrList(l netlink.Link, _ int) ([]netlink.Addr, error) {
	if l.Attrs().Name != "eth0" {
		return nil, nil
	}
	var out []netlink.Addr
	for _, s := range n.addrs {
		ip, ipnet, err := net.ParseCIDR(s)
		if err != nil {
			panic(err)
		}
		ipnet.IP = ip
		out = append(out, netlink.Addr{IPNet: ipnet})
	}
	return out, n.err
}

// TestTunnelSourceAddrs: a tunnel's packets leave from its local address
// when it is bound to one, else from its underlay's global addresses
// (not link-local ones); addresses that could not be listed are an
// error, not "none".
func TestTunnelSourceAddrs(t *testing.T) {
	for _, tt := range []struct {
		name  string
		nl    *addrNetlink
		want  []netip.Addr
		known bool
	}{
		{"unbound", &addrNetlink{addrs: []string{"10.0.0.1/24", "fe80::1/64", "fd00::1/64"}},
			[]netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}, true},
		{"bound", &addrNetlink{local: net.ParseIP("10.0.0.9"), addrs: []string{"10.0.0.1/24"}},
			[]netip.Addr{netip.MustParseAddr("10.0.0.9")}, true},
		{"no addresses", &addrNetlink{}, []netip.Addr{}, true},
		{"unreadable", &addrNetlink{err: syscall.EPERM}, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := procTree(t, nil)
			h.Netlink, h.Ethtool = tt.nl, noFeatures{}
			got := h.Tunnels()
			if got.Err.Failed() || len(got.Devices) != 1 || got.Devices[0].Underlay == nil {
				t.Fatalf("tunnels %+v", got)
			}
			addrs, known := got.Devices[0].SourceAddrs()
			if known != tt.known || !slices.Equal(addrs, tt.want) {
				t.Errorf("source addresses %v (known %v), want %v (known %v)", addrs, known, tt.want, tt.known)
			}
			if u := got.Devices[0].Underlay; tt.nl.err != nil && !errors.Is(u.AddrsErr, detect.ErrPermission) {
				t.Errorf("the error does not say permission: %v", u.AddrsErr)
			}
		})
	}
}
