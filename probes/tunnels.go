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
	var defaultDev *int
	for _, l := range links {
		t, parent, ok := tunnelOf(l)
		if !ok {
			continue
		}
		t.Features = h.features(t.Name)
		source := "link"
		if parent == 0 {
			if defaultDev == nil {
				idx := h.defaultRouteIndex()
				defaultDev = &idx
			}
			parent, source = *defaultDev, "default-route"
		}
		if pl, ok := lookup(parent); ok && parent != t.Index {
			a := pl.Attrs()
			t.Underlay = &detect.Underlay{
				Name: a.Name, Index: a.Index, MTU: a.MTU, Source: source,
				Features: h.features(a.Name),
				RxQueues: h.rxQueues(a.Name),
			}
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
// is bound to (0 if none).
func tunnelOf(l netlink.Link) (t detect.Tunnel, parent int, ok bool) {
	a := l.Attrs()
	t = detect.Tunnel{Name: a.Name, Index: a.Index, MTU: a.MTU, Up: a.Flags&net.FlagUp != 0}
	switch v := l.(type) {
	case *netlink.Vxlan:
		t.Kind, t.VNI, t.Port = detect.KindVXLAN, uint32(v.VxlanId), v.Port
		t.IPv6 = isV6(v.SrcAddr) || isV6(v.Group)
		t.OuterChecksum = &detect.OuterChecksum{UDPCsum: v.UDPCSum, ZeroCsum6Tx: v.UDP6ZeroCSumTx, ZeroCsum6Rx: v.UDP6ZeroCSumRx,
			PerPacket: v.FlowBased}
		parent = v.VtepDevIndex
	case *netlink.Geneve:
		t.Kind, t.VNI, t.Port = detect.KindGeneve, v.ID, int(v.Dport)
		t.IPv6 = isV6(v.Remote)
		// OuterChecksum stays unknown: github.com/vishvananda/netlink
		// (v1.3.1) does not read IFLA_GENEVE_UDP_CSUM or the ZERO_CSUM6
		// flags back from the kernel, so v.UdpCsum and its siblings are
		// always 0 on a dumped link.
		parent = int(v.Link)
	case *netlink.Iptun:
		t.Kind = detect.KindIPIP
		parent = int(v.Link)
	default:
		return t, 0, false
	}
	if parent == 0 {
		parent = a.ParentIndex
	}
	return t, parent, true
}

func isV6(ip net.IP) bool { return ip != nil && ip.To4() == nil }

// defaultRouteIndex returns the link index of the IPv4 default route, or 0.
func (h *Host) defaultRouteIndex() int {
	routes, err := h.Netlink.RouteList(nil, netlink.FAMILY_V4)
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
