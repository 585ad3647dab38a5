package probes

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"

	"github.com/nodetune/nodetune/detect"
)

// Tunnels lists every VXLAN, Geneve and IPIP link in the current network
// namespace, whatever its name, with its underlay and the ethtool features
// of both.
func (h *Host) Tunnels() detect.Tunnels {
	links, lookup, err := h.tunnelLinks()
	if err != nil {
		return detect.Tunnels{Err: fail("listing links", err)}
	}
	out := detect.Tunnels{Devices: []detect.Tunnel{}}
	defaults := map[int]int{}
	defaultDev := func(family int) int {
		idx, ok := defaults[family]
		if !ok {
			idx = h.defaultRouteIndex(family)
			defaults[family] = idx
		}
		return idx
	}
	for _, l := range links {
		t, parent, familyKnown, ok := tunnelOf(l)
		if !ok {
			continue
		}
		if a := l.Attrs(); detect.IsPeerTunnelLink(a.Name, a.Alias) {
			// A peer measurement's temporary tunnel: its offload is
			// switched on purpose, and it is gone after the session.
			out.PeerMeasurement = append(out.PeerMeasurement, a.Name)
			continue
		}
		t.Features = h.features(t.Name)
		source := "link"
		if parent == 0 {
			parent, source = unboundUnderlay(&t, familyKnown, defaultDev)
		}
		if pl, ok := lookup(parent); ok && parent != t.Index {
			a := pl.Attrs()
			t.Underlay = &detect.Underlay{
				Name: a.Name, Index: a.Index, MTU: a.MTU, Source: source,
				Features: h.features(a.Name),
				RxQueues: h.rxQueues(a.Name),
			}
			h.fillAddrs(&t, l, pl)
		} else {
			h.fillAddrs(&t, l, nil)
		}
		out.Devices = append(out.Devices, t)
	}
	sort.Slice(out.Devices, func(i, j int) bool { return out.Devices[i].Name < out.Devices[j].Name })
	return out
}

// dumpRetries is how many times a netlink dump is tried when the kernel
// interrupts it because links changed while it was read, as they do on a
// node that is starting pods.
const dumpRetries = 3

// retryDump runs dump until it is not interrupted, at most dumpRetries
// times; the last error is returned if every try was.
func retryDump[T any](dump func() (T, error)) (T, error) {
	var v T
	var err error
	for range dumpRetries {
		if v, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return v, err
}

// tunnelKinds are the link kinds Tunnels reports.
var tunnelKinds = []string{detect.KindVXLAN, detect.KindGeneve, detect.KindIPIP}

// tunnelLinks returns the links that may be tunnels, and a lookup for the
// devices beneath them. A seam that lists by kind spares the dump of every
// pod veth on the node; any other lists every link.
func (h *Host) tunnelLinks() ([]netlink.Link, func(int) (netlink.Link, bool), error) {
	if kl, ok := h.Netlink.(KindLister); ok {
		var links []netlink.Link
		for _, kind := range tunnelKinds {
			ls, err := retryDump(func() ([]netlink.Link, error) { return kl.LinkListByKind(kind) })
			if err != nil {
				return nil, nil, err
			}
			links = append(links, ls...)
		}
		lookup := func(index int) (netlink.Link, bool) {
			if index <= 0 {
				return nil, false
			}
			l, err := kl.LinkByIndex(index)
			return l, err == nil
		}
		return links, lookup, nil
	}
	links, err := retryDump(h.Netlink.LinkList)
	if err != nil {
		return nil, nil, err
	}
	byIndex := make(map[int]netlink.Link, len(links))
	for _, l := range links {
		byIndex[l.Attrs().Index] = l
	}
	return links, func(index int) (netlink.Link, bool) { l, ok := byIndex[index]; return l, ok }, nil
}

// tunnelOf describes l if it is a tunnel, with the index of the device it
// is bound to (0 if none), and whether its addresses (local, remote or
// group) tell its outer IP family.
func tunnelOf(l netlink.Link) (t detect.Tunnel, parent int, familyKnown, ok bool) {
	a := l.Attrs()
	t = detect.Tunnel{Name: a.Name, Index: a.Index, MTU: a.MTU, Up: a.Flags&net.FlagUp != 0}
	var addrs []net.IP
	switch v := l.(type) {
	case *netlink.Vxlan:
		t.Kind, t.VNI, t.Port = detect.KindVXLAN, uint32(v.VxlanId), v.Port
		addrs = []net.IP{v.SrcAddr, v.Group}
		t.OuterChecksum = &detect.OuterChecksum{UDPCsum: v.UDPCSum, ZeroCsum6Tx: v.UDP6ZeroCSumTx, ZeroCsum6Rx: v.UDP6ZeroCSumRx,
			PerPacket: v.FlowBased}
		parent = v.VtepDevIndex
	case *netlink.Geneve:
		t.Kind, t.VNI, t.Port = detect.KindGeneve, v.ID, int(v.Dport)
		addrs = []net.IP{v.Remote}
		// OuterChecksum stays unknown: github.com/vishvananda/netlink
		// (v1.3.1) does not read IFLA_GENEVE_UDP_CSUM or the ZERO_CSUM6
		// flags back from the kernel, so v.UdpCsum and its siblings are
		// always 0 on a dumped link.
		parent = int(v.Link)
	case *netlink.Iptun:
		// IPIP's outer header is IPv4 by definition (IPv6 is ip6tnl).
		t.Kind, familyKnown = detect.KindIPIP, true
		parent = int(v.Link)
	default:
		return t, 0, false, false
	}
	for _, ip := range addrs {
		if ip != nil && !ip.IsUnspecified() {
			familyKnown = true
			t.IPv6 = t.IPv6 || isV6(ip)
		}
	}
	if parent == 0 {
		parent = a.ParentIndex
	}
	return t, parent, familyKnown, true
}

func isV6(ip net.IP) bool { return ip != nil && ip.To4() == nil }

// unboundUnderlay finds the device an unbound tunnel's packets leave by:
// the default route of its outer family. A tunnel whose addresses do not
// tell the family (Cilium's and OVS's collect-metadata devices) sends
// IPv4 where the node has an IPv4 default route, and IPv6 where it has
// only an IPv6 one; t.IPv6 is set to match.
func unboundUnderlay(t *detect.Tunnel, familyKnown bool, defaultDev func(int) int) (index int, source string) {
	if t.IPv6 {
		return defaultDev(netlink.FAMILY_V6), "default-route-v6"
	}
	if idx := defaultDev(netlink.FAMILY_V4); idx != 0 || familyKnown {
		return idx, "default-route"
	}
	if idx := defaultDev(netlink.FAMILY_V6); idx != 0 {
		t.IPv6 = true
		return idx, "default-route-v6"
	}
	return 0, "default-route"
}

// defaultRouteIndex returns the link index of the default route of family
// (netlink.FAMILY_V4 or FAMILY_V6), or 0.
func (h *Host) defaultRouteIndex(family int) int {
	routes, err := h.Netlink.RouteList(nil, family)
	if err != nil {
		return 0
	}
	for _, r := range routes {
		if r.LinkIndex == 0 {
			continue
		}
		if r.Dst == nil {
			return r.LinkIndex
		}
		if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			return r.LinkIndex
		}
	}
	return 0
}

// features reads the watched ethtool features of dev.
func (h *Host) features(dev string) detect.Features {
	states, err := h.Ethtool.FeaturesWithState(dev)
	if err != nil {
		return detect.Features{Err: fail(fmt.Sprintf("reading ethtool features of %s", dev), err)}
	}
	return WatchedFeatures(states)
}

// WatchedFeatures keeps the features nodetune reasons about from what
// ethtool reports: whether each is active, and which the driver fixes.
func WatchedFeatures(states map[string]ethtool.FeatureState) detect.Features {
	f := detect.Features{State: map[string]bool{}}
	for _, name := range detect.WatchedFeatures {
		st, ok := states[name]
		if !ok {
			continue
		}
		f.State[name] = st.Active
		if !st.Available {
			f.Fixed = append(f.Fixed, name)
		}
	}
	return f
}

// rxQueues lists dev's receive queues and their RPS masks from sysfs.
func (h *Host) rxQueues(dev string) []detect.RxQueue {
	dirs, err := filepath.Glob(h.sys("class/net", dev, "queues", "rx-*"))
	if err != nil {
		return nil
	}
	var out []detect.RxQueue
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "rps_cpus"))
		if err != nil {
			continue // kernels built without CONFIG_RPS have no rps_cpus
		}
		out = append(out, detect.RxQueue{Name: filepath.Base(d), RPSCPUs: strings.TrimSpace(string(b))})
	}
	return out
}
