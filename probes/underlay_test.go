package probes

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestUnboundUnderlayByFamily: an unbound tunnel takes the default route
// of its outer family; one whose addresses say nothing takes the IPv4 one,
// or the IPv6 one on a node that has only that; IPIP is always IPv4.
func TestUnboundUnderlayByFamily(t *testing.T) {
	const v4, v6 = 2, 3
	for _, tt := range []struct {
		name       string
		link       netlink.Link
		defaults   map[int]int
		wantIndex  int
		wantSource string
		wantIPv6   bool
	}{
		{"IPv6 local, dual-stack node", &netlink.Vxlan{SrcAddr: net.ParseIP("fd00::1")},
			map[int]int{netlink.FAMILY_V4: v4, netlink.FAMILY_V6: v6}, v6, "default-route-v6", true},
		{"IPv6 remote (Geneve)", &netlink.Geneve{Remote: net.ParseIP("fd00::9")},
			map[int]int{netlink.FAMILY_V4: v4, netlink.FAMILY_V6: v6}, v6, "default-route-v6", true},
		{"IPv4 local", &netlink.Vxlan{SrcAddr: net.ParseIP("10.0.0.1")},
			map[int]int{netlink.FAMILY_V4: v4, netlink.FAMILY_V6: v6}, v4, "default-route", false},
		{"IPv4 local on an IPv6-only node: no underlay", &netlink.Vxlan{SrcAddr: net.ParseIP("10.0.0.1")},
			map[int]int{netlink.FAMILY_V6: v6}, 0, "default-route", false},
		{"collect-metadata, dual-stack node", &netlink.Vxlan{FlowBased: true},
			map[int]int{netlink.FAMILY_V4: v4, netlink.FAMILY_V6: v6}, v4, "default-route", false},
		{"collect-metadata, IPv6-only node", &netlink.Vxlan{FlowBased: true},
			map[int]int{netlink.FAMILY_V6: v6}, v6, "default-route-v6", true},
		{"IPIP fallback device on an IPv6-only node", &netlink.Iptun{},
			map[int]int{netlink.FAMILY_V6: v6}, 0, "default-route", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tun, parent, known, ok := tunnelOf(tt.link)
			if !ok || parent != 0 {
				t.Fatalf("tunnelOf: ok %v, parent %d", ok, parent)
			}
			idx, source := unboundUnderlay(&tun, known, func(f int) int { return tt.defaults[f] })
			if idx != tt.wantIndex || source != tt.wantSource || tun.IPv6 != tt.wantIPv6 {
				t.Errorf("got index %d from %s, IPv6 %v; want %d from %s, IPv6 %v", idx, source, tun.IPv6, tt.wantIndex, tt.wantSource, tt.wantIPv6)
			}
		})
	}
}
