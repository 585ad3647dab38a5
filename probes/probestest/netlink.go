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
		if l.LinkInfo == nil || l.LinkInfo.Data == nil {
			links = append(links, &netlink.Device{LinkAttrs: attrs})
			continue
		}
		d := l.LinkInfo.Data
		var id uint32
		if d.ID != nil {
			id = *d.ID
		}
		switch l.LinkInfo.Kind {
		case "vxlan":
			links = append(links, &netlink.Vxlan{LinkAttrs: attrs, VxlanId: int(id), Port: d.Port,
				VtepDevIndex: index[d.Link], SrcAddr: net.ParseIP(d.Local), Group: net.ParseIP(d.Group),
				UDPCSum: d.UDPCsum, UDP6ZeroCSumTx: d.ZeroCsum6Tx, UDP6ZeroCSumRx: d.ZeroCsum6Rx, FlowBased: d.External})
		case "geneve":
			// As the real library returns it: a dump never fills the
			// UDP checksum fields of a Geneve link.
			links = append(links, &netlink.Geneve{LinkAttrs: attrs, ID: id, Dport: uint16(d.Port), Remote: net.ParseIP(d.Remote)})
		case "ipip":
			links = append(links, &netlink.Iptun{LinkAttrs: attrs, Link: uint32(index[d.Link]),
				Local: net.ParseIP(d.Local), Remote: net.ParseIP(d.Remote)})
		default:
			links = append(links, &netlink.Device{LinkAttrs: attrs})
		}
	}
	return links, nil
}

// ipRoute is the part of one `ip -j route show` entry the fake reads.
type ipRoute struct {
	Dst string `json:"dst"`
	Dev string `json:"dev"`
}

// ParseIPRoutes parses `ip -j route show` output into netlink routes,
// resolving device names through links.
func ParseIPRoutes(data []byte, links []netlink.Link) ([]netlink.Route, error) {
	var raw []ipRoute
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parsing ip -j route output: %w", err)
	}
	var out []netlink.Route
	for _, r := range raw {
		route := netlink.Route{}
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
// show`) and netlink/routes.json (`ip -j route show`).
type Netlink struct {
	Links  []netlink.Link
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
	if b, err := os.ReadFile(filepath.Join(dir, "routes.json")); err == nil {
		if n.Routes, err = ParseIPRoutes(b, links); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// LinkList returns the captured links.
func (n *Netlink) LinkList() ([]netlink.Link, error) { return n.Links, nil }

// RouteList returns the captured routes; link and family are ignored.
func (n *Netlink) RouteList(link netlink.Link, family int) ([]netlink.Route, error) {
	return n.Routes, nil
}
