package probes

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/nodetune/nodetune/detect"
)

// AddrLister is a Netlink that can list a device's addresses.
// *netlink.Handle (and so FilteringNetlink) is one; a seam that is not
// leaves underlay addresses unread, which rules treat as unknown.
type AddrLister interface {
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
}

var _ AddrLister = (*netlink.Handle)(nil)

// errNoAddrSeam says the netlink seam cannot list addresses.
var errNoAddrSeam = fmt.Errorf("listing addresses: %w: the netlink seam cannot", detect.ErrNotSupported)

// underlayAddrs are the global unicast addresses of link l, the source
// addresses an unbound tunnel over it sends from.
func (h *Host) underlayAddrs(l netlink.Link) ([]netip.Addr, error) {
	al, ok := h.Netlink.(AddrLister)
	if !ok {
		return nil, errNoAddrSeam
	}
	addrs, err := al.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, detect.Classify("listing the addresses of "+l.Attrs().Name, err)
	}
	out := []netip.Addr{}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap().IsGlobalUnicast() {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

// localAddr is the address a VXLAN link is bound to ("local"), or the
// zero Addr.
func localAddr(l netlink.Link) netip.Addr {
	v, ok := l.(*netlink.Vxlan)
	if !ok || v.SrcAddr == nil || v.SrcAddr.IsUnspecified() {
		return netip.Addr{}
	}
	ip, _ := netip.AddrFromSlice(v.SrcAddr)
	return ip.Unmap()
}

// fillAddrs sets t's local address and its underlay's addresses.
func (h *Host) fillAddrs(t *detect.Tunnel, l, underlay netlink.Link) {
	t.Local = localAddr(l)
	if t.Underlay == nil || underlay == nil {
		return
	}
	addrs, err := h.underlayAddrs(underlay)
	if err != nil && !errors.Is(err, errNoAddrSeam) {
		t.Underlay.AddrsErr = detect.Fail(err)
		return
	}
	t.Underlay.Addrs = addrs
}
