package probes_test

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/probes"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// TestIPv6OnlyUnboundVXLAN, on a real kernel: a namespace with only an
// IPv6 default route, and a VXLAN device bound to no device whose local
// address is IPv6 and whose MTU (1450) is 20 bytes above what VXLAN over
// IPv6 allows on a 1500 underlay. The probe must find its underlay through
// the IPv6 default route, and the MTU rule must fire.
func TestIPv6OnlyUnboundVXLAN(t *testing.T) {
	bed := testbedtest.New(t, testbed.Options{})
	side := bed.A
	h := side.Netlink()
	under, err := h.LinkByName(side.Underlay)
	if err != nil {
		t.Fatal(err)
	}
	local := net.ParseIP("fd00:77::1")
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: local, Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
	if err := h.AddrAdd(under, addr); err != nil {
		t.Fatal(err)
	}
	// The testbed has no IPv4 default route: the namespace is IPv6-only as
	// far as default routes go.
	if err := h.RouteAdd(&netlink.Route{LinkIndex: under.Attrs().Index, Gw: net.ParseIP("fd00:77::fe"), Family: netlink.FAMILY_V6}); err != nil {
		t.Fatal(err)
	}
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "flannel-v6.1", MTU: 1450}, VxlanId: 77, Port: 8472, SrcAddr: local}
	if err := h.LinkAdd(vx); err != nil {
		t.Fatal(err)
	}

	host, err := probes.NewHost(probes.DefaultPaths, h, side.Ethtool())
	if err != nil {
		t.Fatal(err)
	}
	tunnels := host.Tunnels()
	if tunnels.Err.Failed() {
		t.Fatal(tunnels.Err)
	}
	var got *detect.Tunnel
	for i, d := range tunnels.Devices {
		if d.Name == "flannel-v6.1" {
			got = &tunnels.Devices[i]
		}
	}
	if got == nil || got.Underlay == nil || got.Underlay.Name != side.Underlay || got.Underlay.Source != "default-route-v6" || !got.IPv6 {
		t.Fatalf("flannel-v6.1 = %+v; want IPv6 over %s found by the IPv6 default route", got, side.Underlay)
	}
	s := &detect.Snapshot{Tunnels: detect.Tunnels{Devices: []detect.Tunnel{*got}}}
	var fired []string
	for _, f := range rules.Evaluate(s, rules.DefaultConfig()).Findings {
		if f.Rule == rules.TunnelMTUMismatch {
			fired = append(fired, f.Subject+": "+f.Summary)
		}
	}
	if len(fired) != 1 || fired[0] != "flannel-v6.1: flannel-v6.1 has MTU 1450 but its underlay "+side.Underlay+" allows at most 1430" {
		t.Errorf("MTU findings %q; want one for flannel-v6.1 at most 1430", fired)
	}
}

// TestCiliumRouteMTUFromNetlink, on a real kernel: a Cilium-like node with
// cilium_host/cilium_net, cilium_vxlan at the underlay's MTU, and routes
// to two other nodes' pods carrying 1450 and 1500. The probe reads the
// route MTUs from netlink, and the rule names the route that does not fit,
// not cilium_vxlan.
func TestCiliumRouteMTUFromNetlink(t *testing.T) {
	bed := testbedtest.New(t, testbed.Options{})
	side := bed.A
	h := side.Netlink()
	under, err := h.LinkByName(side.Underlay)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "cilium_host", MTU: 1500}, PeerName: "cilium_net"}); err != nil {
		t.Fatal(err)
	}
	host, err := h.LinkByName("cilium_host")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(host); err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(host, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.0.0.146"), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "cilium_vxlan", MTU: 1500}, FlowBased: true, Port: 8472}
	if err := h.LinkAdd(vx); err != nil {
		t.Fatal(err)
	}
	for dst, mtu := range map[string]int{"10.0.1.0/24": 1450, "10.0.2.0/24": 1500} {
		_, n, _ := net.ParseCIDR(dst)
		if err := h.RouteAdd(&netlink.Route{LinkIndex: host.Attrs().Index, Dst: n, MTU: mtu, Scope: netlink.SCOPE_LINK}); err != nil {
			t.Fatalf("route %s: %v", dst, err)
		}
	}
	// The underlay carries the IPv4 default route, as a node's NIC does.
	if err := h.RouteAdd(&netlink.Route{LinkIndex: under.Attrs().Index, Scope: netlink.SCOPE_LINK, Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}}); err != nil {
		t.Fatal(err)
	}

	hostProbe, err := probes.NewHost(probes.DefaultPaths, h, side.Ethtool())
	if err != nil {
		t.Fatal(err)
	}
	s := &detect.Snapshot{Tunnels: hostProbe.Tunnels()}
	s.PodPath = hostProbe.PodPath(s.Tunnels.Devices)
	if s.PodPath.RoutesErr.Failed() {
		t.Fatal(s.PodPath.RoutesErr)
	}
	mtus := map[string]int{}
	for _, r := range s.PodPath.Routes {
		mtus[r.Dst] = r.MTU
	}
	if mtus["10.0.1.0/24"] != 1450 || mtus["10.0.2.0/24"] != 1500 {
		t.Fatalf("route MTUs read from netlink: %v", mtus)
	}
	var fired []string
	for _, f := range rules.Evaluate(s, rules.DefaultConfig()).Findings {
		if f.Rule == rules.TunnelMTUMismatch {
			fired = append(fired, f.Subject)
		}
	}
	if len(fired) != 1 || fired[0] != "route 10.0.2.0/24 dev cilium_host" {
		t.Errorf("MTU findings on %q; want the route to 10.0.2.0/24 only", fired)
	}
}
