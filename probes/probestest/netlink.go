package probestest

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"

	"github.com/vishvananda/netlink"
)

// ipLink is the part of one `ip -d -j link show` entry the fake reads.
type ipLink struct {
	Index    int      `json:"ifindex"`
	Name     string   `json:"ifname"`
	Flags    []string `json:"flags"`
	MTU      int      `json:"mtu"`
	Link     string   `json:"link"`
	Master   string   `json:"master"`
	LinkInfo *struct {
		Kind string `json:"info_kind"`
		Data *struct {
			ID     *uint32 `json:"id"`
			Port   int     `json:"port"`
			Link   string  `json:"link"`
			Local  string  `json:"local"`
			Group  string  `json:"group"`
			Remote string  `json:"remote"`
			// The outer checksum settings; absent in captures from
			// before nodetune read them, which then read as off.
			UDPCsum     bool `json:"udp_csum"`
			ZeroCsum6Tx bool `json:"udp_zero_csum6_tx"`
			ZeroCsum6Rx bool `json:"udp_zero_csum6_rx"`
			// IPv6 addresses come in their own keys.
			Local6  string `json:"local6"`
			Group6  string `json:"group6"`
			Remote6 string `json:"remote6"`
			// External is collect_md mode (Cilium's cilium_vxlan).
			External bool `json:"external"`
		} `json:"info_data"`
	} `json:"linkinfo"`
}

// ParseIPLinks parses `ip -d -j link show` output into netlink links:
// *netlink.Vxlan, *netlink.Geneve and *netlink.Iptun for tunnels, and
// *netlink.Device for everything else.
func ParseIPLinks(data []byte) ([]netlink.Link, error) {
	var raw []ipLink
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parsing ip -j link output: %w", err)
	}
	index := map[string]int{}
	for _, l := range raw {
		if l.Name == "" || l.Index <= 0 {
			return nil, fmt.Errorf("parsing ip -j link output: entry without ifname or ifindex")
		}
		index[l.Name] = l.Index
	}
	links := make([]netlink.Link, 0, len(raw))
	for _, l := range raw {
		attrs := netlink.LinkAttrs{Index: l.Index, Name: l.Name, MTU: l.MTU}
		if slices.Contains(l.Flags, "UP") {
			attrs.Flags |= net.FlagUp
		}
		if l.Link != "" {
			attrs.ParentIndex = index[l.Link]
		}
		if l.Master != "" {
			attrs.MasterIndex = index[l.Master]
		}
		if l.LinkInfo == nil || l.LinkInfo.Data == nil {
			links = append(links, plainLink(l, attrs))
			continue
		}
		d := l.LinkInfo.Data
		var id uint32
		if d.ID != nil {
			id = *d.ID
		}
		local, remote, group := ip(d.Local, d.Local6), ip(d.Remote, d.Remote6), ip(d.Group, d.Group6)
		switch l.LinkInfo.Kind {
		case "vxlan":
			// netlink keeps a unicast remote in Group, as the kernel does.
			if group == nil {
				group = remote
			}
			links = append(links, &netlink.Vxlan{LinkAttrs: attrs, VxlanId: int(id), Port: d.Port,
				VtepDevIndex: index[d.Link], SrcAddr: local, Group: group,
				UDPCSum: d.UDPCsum, UDP6ZeroCSumTx: d.ZeroCsum6Tx, UDP6ZeroCSumRx: d.ZeroCsum6Rx, FlowBased: d.External})
		case "geneve":
			// As the real library returns it: a dump never fills the
			// UDP checksum fields of a Geneve link.
			links = append(links, &netlink.Geneve{LinkAttrs: attrs, ID: id, Dport: uint16(d.Port), Remote: remote})
		case "ipip":
			links = append(links, &netlink.Iptun{LinkAttrs: attrs, Link: uint32(index[d.Link]), Local: local, Remote: remote})
		default:
			links = append(links, plainLink(l, attrs))
		}
	}
	return links, nil
}

// plainLink is a link that is no tunnel: a veth, an Open vSwitch
// datapath (kind openvswitch) or any other device, typed as netlink types
// it so that Type() answers as on a real node.
func plainLink(l ipLink, attrs netlink.LinkAttrs) netlink.Link {
	kind := ""
	if l.LinkInfo != nil {
		kind = l.LinkInfo.Kind
	}
	switch kind {
	case "":
		return &netlink.Device{LinkAttrs: attrs}
	case "veth":
		return &netlink.Veth{LinkAttrs: attrs}
	}
	return &netlink.GenericLink{LinkAttrs: attrs, LinkType: kind}
}

// ip parses whichever of an IPv4 and an IPv6 key is set, or returns nil.
func ip(v4, v6 string) net.IP {
	if v4 != "" {
		return net.ParseIP(v4)
	}
	return net.ParseIP(v6)
}

// ipRoute is the part of one `ip -j route show` entry the fake reads.
type ipRoute struct {
	Dst     string `json:"dst"`
	Dev     string `json:"dev"`
	Metrics []struct {
		MTU int `json:"mtu"`
	} `json:"metrics"`
}

// ParseIPRoutes parses `ip -j route show` output into netlink routes,
// resolving device names through links.
func ParseIPRoutes(data []byte, links []netlink.Link) ([]netlink.Route, error) {
	return parseIPRoutes(data, links, netlink.FAMILY_V4)
}

func parseIPRoutes(data []byte, links []netlink.Link, family int) ([]netlink.Route, error) {
	var raw []ipRoute
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parsing ip -j route output: %w", err)
	}
	var out []netlink.Route
	for _, r := range raw {
		route := netlink.Route{Family: family}
		for _, m := range r.Metrics {
			if m.MTU > 0 {
				route.MTU = m.MTU
			}
		}
		for _, l := range links {
			if l.Attrs().Name == r.Dev {
				route.LinkIndex = l.Attrs().Index
			}
		}
		if r.Dst != "default" {
			_, dst, err := net.ParseCIDR(r.Dst)
			if err != nil {
				ip := net.ParseIP(r.Dst)
				if ip == nil {
					return nil, fmt.Errorf("parsing ip -j route output: bad dst %q", r.Dst)
				}
				dst = &net.IPNet{IP: ip, Mask: net.CIDRMask(len(ip)*8, len(ip)*8)}
			}
			route.Dst = dst
		}
		out = append(out, route)
	}
	return out, nil
}

// Netlink serves links and routes from netlink/links.json (`ip -d -j link
// show`), netlink/routes.json (`ip -j route show`) and
// netlink/routes6.json (`ip -6 -j route show`).
type Netlink struct {
	Links []netlink.Link
	// Routes are IPv4 and IPv6 routes, each with its Family.
	Routes []netlink.Route
}

// LoadNetlink reads the captured links and routes under dir.
func LoadNetlink(dir string) (*Netlink, error) {
	b, err := os.ReadFile(filepath.Join(dir, "links.json"))
	if err != nil {
		return nil, err
	}
	links, err := ParseIPLinks(b)
	if err != nil {
		return nil, err
	}
	n := &Netlink{Links: links}
	for file, family := range map[string]int{"routes.json": netlink.FAMILY_V4, "routes6.json": netlink.FAMILY_V6} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			continue
		}
		routes, err := parseIPRoutes(b, links, family)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		n.Routes = append(n.Routes, routes...)
	}
	slices.SortStableFunc(n.Routes, func(a, b netlink.Route) int { return a.Family - b.Family })
	return n, nil
}

// LinkList returns the captured links.
func (n *Netlink) LinkList() ([]netlink.Link, error) { return n.Links, nil }

// RouteList returns the captured routes of family (all for
// netlink.FAMILY_ALL); link is ignored.
func (n *Netlink) RouteList(link netlink.Link, family int) ([]netlink.Route, error) {
	var out []netlink.Route
	for _, r := range n.Routes {
		if family == netlink.FAMILY_ALL || r.Family == family {
			out = append(out, r)
		}
	}
	return out, nil
}
