package probes

import (
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/nodetune/nodetune/detect"
)

// PodPath reads where pod packets get their MTU, for the tunnels whose
// CNI limits it off the tunnel device (detect.MTUModelOf): the routes
// through Cilium's devices, and the pod interfaces on an Open vSwitch
// datapath. It reads nothing on a node without such tunnels.
func (h *Host) PodPath(tunnels []detect.Tunnel) detect.PodPath {
	var p detect.PodPath
	models := map[string]bool{}
	for _, t := range tunnels {
		models[detect.MTUModelOf(t)] = true
	}
	if !models[detect.MTUModelRoutes] && !models[detect.MTUModelPodInterface] {
		return p
	}
	links, err := retryDump(h.Netlink.LinkList)
	if err != nil {
		err = fail("listing links for the pod path", err)
		p.RoutesErr, p.InterfacesErr = detect.Fail(err), detect.Fail(err)
		return p
	}
	if models[detect.MTUModelRoutes] {
		p.Routes, p.RoutesErr = h.ciliumRoutes(links)
	}
	if models[detect.MTUModelPodInterface] {
		p.Interfaces = ovsPodInterfaces(links)
	}
	return p
}

// ciliumRoutes returns the IPv4 and IPv6 routes through Cilium's devices,
// with their own MTU (netlink's RTAX_MTU) and their device's.
func (h *Host) ciliumRoutes(links []netlink.Link) ([]detect.RouteMTU, detect.Err) {
	devs := map[int]netlink.Link{}
	for _, l := range links {
		if slices.Contains(detect.CiliumRouteDevices, l.Attrs().Name) {
			devs[l.Attrs().Index] = l
		}
	}
	var out []detect.RouteMTU
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := retryDump(func() ([]netlink.Route, error) { return h.Netlink.RouteList(nil, family) })
		if err != nil {
			return out, fail("listing routes for the pod path", err)
		}
		for _, r := range routes {
			dev, ok := devs[r.LinkIndex]
			if !ok {
				continue
			}
			dst := "default"
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones > 0 || !r.Dst.IP.IsUnspecified() {
					dst = r.Dst.String()
				}
			}
			out = append(out, detect.RouteMTU{
				Dst: dst, Dev: dev.Attrs().Name, MTU: r.MTU, DevMTU: dev.Attrs().MTU,
				IPv6: family == netlink.FAMILY_V6,
			})
		}
	}
	return out, detect.Err{}
}

// ovsPodInterfaces returns the veths attached to an Open vSwitch datapath
// (a link of kind openvswitch, such as ovs-system): the host ends of pod
// interfaces on OVN-Kubernetes, Antrea and Kube-OVN nodes.
func ovsPodInterfaces(links []netlink.Link) []detect.PodInterface {
	ovs := map[int]string{}
	for _, l := range links {
		if l.Type() == "openvswitch" {
			ovs[l.Attrs().Index] = l.Attrs().Name
		}
	}
	var out []detect.PodInterface
	for _, l := range links {
		a := l.Attrs()
		if master, ok := ovs[a.MasterIndex]; ok && l.Type() == "veth" {
			out = append(out, detect.PodInterface{Name: a.Name, MTU: a.MTU, Master: master})
		}
	}
	return out
}
