package probestest

import (
	"os"
	"strings"
	"testing"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
)

const ethtoolOff = `Features for flannel.1:
rx-checksumming: on
tx-checksumming: off
	tx-checksum-ipv4: off [fixed]
	tx-checksum-ip-generic: off
tcp-segmentation-offload: on
	tx-tcp-segmentation: off [requested on]
generic-segmentation-offload: on
generic-receive-offload: on
rx-udp-gro-forwarding: off
tx-udp-segmentation: on [not requested]
`

func TestParseEthtoolFeatures(t *testing.T) {
	got, err := ParseEthtoolFeatures(ethtoolOff)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ethtool.FeatureState{
		"rx-checksum":             {Available: true, Requested: true, Active: true},
		"tx-checksum-ipv4":        {},
		"tx-checksum-ip-generic":  {Available: true},
		"tx-tcp-segmentation":     {Available: true, Requested: true},
		"tx-generic-segmentation": {Available: true, Requested: true, Active: true},
		"rx-gro":                  {Available: true, Requested: true, Active: true},
		"rx-udp-gro-forwarding":   {Available: true},
		"tx-udp-segmentation":     {Available: true, Active: true},
	}
	if len(got) != len(want) {
		t.Errorf("got %d features, want %d: %v", len(got), len(want), got)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %+v, want %+v", name, got[name], w)
		}
	}
}

func TestParseEthtoolFeaturesRejects(t *testing.T) {
	for _, in := range []string{"", "Features for x:\n", "tx-checksum-ip-generic maybe\n", "rx-gro: sideways\n", "rx-gro: on [bent]\n"} {
		if _, err := ParseEthtoolFeatures(in); err == nil {
			t.Errorf("ParseEthtoolFeatures(%q) accepted", in)
		}
	}
}

func TestParseIPLinksCaptured(t *testing.T) {
	b, err := os.ReadFile("../../testdata/nodes/calico-offload-off/netlink/links.json")
	if err != nil {
		t.Fatal(err)
	}
	links, err := ParseIPLinks(b)
	if err != nil {
		t.Fatal(err)
	}
	var vx *netlink.Vxlan
	for _, l := range links {
		if v, ok := l.(*netlink.Vxlan); ok {
			vx = v
		}
	}
	if vx == nil || vx.Name != "vxlan.calico" || vx.VxlanId != 4096 || vx.Port != 4789 || vx.VtepDevIndex == 0 || vx.MTU != 1450 {
		t.Fatalf("vxlan.calico parsed as %+v", vx)
	}
}

func TestParseIPLinksRejects(t *testing.T) {
	for _, in := range []string{"", "{}", `[{"ifname":"x"}]`, `[{"ifindex":1}]`, "[1,2]"} {
		if _, err := ParseIPLinks([]byte(in)); err == nil {
			t.Errorf("ParseIPLinks(%q) accepted", in)
		}
	}
}

func TestParseIPRoutes(t *testing.T) {
	links := []netlink.Link{&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "eth0", Index: 3}}}
	routes, err := ParseIPRoutes([]byte(`[{"dst":"default","dev":"eth0"},{"dst":"10.0.0.0/8","dev":"eth0"},{"dst":"10.1.2.3","dev":"eth0"}]`), links)
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 3 || routes[0].Dst != nil || routes[0].LinkIndex != 3 || routes[1].Dst.String() != "10.0.0.0/8" || routes[2].Dst.String() != "10.1.2.3/32" {
		t.Fatalf("routes = %+v", routes)
	}
	if _, err := ParseIPRoutes([]byte(`[{"dst":"nonsense"}]`), links); err == nil {
		t.Error("bad dst accepted")
	}
}

func FuzzParseEthtoolFeatures(f *testing.F) {
	f.Add(ethtoolOff)
	f.Add("x: on [fixed]\n\ty: off [requested on]\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseEthtoolFeatures(s)
		if err == nil && len(got) == 0 {
			t.Fatal("success with no features")
		}
		for name := range got {
			if name == "" || strings.ContainsAny(name, " \t") {
				t.Fatalf("bad feature name %q", name)
			}
		}
	})
}

func FuzzParseIPLinks(f *testing.F) {
	if b, err := os.ReadFile("../../testdata/nodes/busy-node/netlink/links.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`[{"ifindex":5,"ifname":"v","linkinfo":{"info_kind":"geneve","info_data":{"id":4294967295,"port":99999}}}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		links, err := ParseIPLinks(b)
		if err != nil {
			return
		}
		if _, err := ParseIPRoutes([]byte(`[{"dst":"default","dev":"v"}]`), links); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLoadNetlinkPodPath: the fake keeps what the MTU rule needs: IPv6
// tunnel addresses, masters and kinds of plain links, route MTUs, and
// routes by family.
func TestLoadNetlinkPodPath(t *testing.T) {
	n, err := LoadNetlink("../../testdata/nodes/flannel-ipv6-only/netlink")
	if err != nil {
		t.Fatal(err)
	}
	var vx *netlink.Vxlan
	for _, l := range n.Links {
		if v, ok := l.(*netlink.Vxlan); ok {
			vx = v
		}
	}
	if vx == nil || vx.SrcAddr.String() != "fd00:99::1" {
		t.Errorf("flannel-v6.1 = %+v, want local fd00:99::1", vx)
	}
	if v4, _ := n.RouteList(nil, netlink.FAMILY_V4); len(v4) != 0 {
		t.Errorf("IPv4 routes %v, want none", v4)
	}
	if v6, _ := n.RouteList(nil, netlink.FAMILY_V6); len(v6) != 2 || v6[1].Dst != nil || v6[1].Family != netlink.FAMILY_V6 {
		t.Errorf("IPv6 routes %+v, want a prefix and a default route", v6)
	}

	n, err = LoadNetlink("../../testdata/nodes/ovs-geneve/netlink")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	masters := map[string]int{}
	for _, l := range n.Links {
		kinds[l.Attrs().Name] = l.Type()
		masters[l.Attrs().Name] = l.Attrs().MasterIndex
	}
	if kinds["ovs-system"] != "openvswitch" || kinds["a1b2c3d4e5f6"] != "veth" || masters["a1b2c3d4e5f6"] != 4 {
		t.Errorf("kinds %v, masters %v", kinds, masters)
	}

	n, err = LoadNetlink("../../testdata/nodes/cilium-route-mtu/netlink")
	if err != nil {
		t.Fatal(err)
	}
	mtus := map[string]int{}
	for _, r := range n.Routes {
		if r.Dst != nil {
			mtus[r.Dst.String()] = r.MTU
		}
	}
	if mtus["10.0.1.0/24"] != 1450 || mtus["10.0.2.0/24"] != 1500 || mtus["10.0.0.0/24"] != 0 {
		t.Errorf("route MTUs %v", mtus)
	}
}

const ethtoolChannels = `Channel parameters for eth0:
Pre-set maximums:
RX:		n/a
TX:		n/a
Other:		1
Combined:	8
Current hardware settings:
RX:		n/a
TX:		n/a
Other:		1
Combined:	2
`

func TestParseEthtoolChannels(t *testing.T) {
	got, err := ParseEthtoolChannels(ethtoolChannels)
	if err != nil {
		t.Fatal(err)
	}
	want := ethtool.Channels{MaxOther: 1, MaxCombined: 8, OtherCount: 1, CombinedCount: 2}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "Combined: 8\n", "Pre-set maximums:\nCombined: many\n", "Pre-set maximums:\nQueues: 1\n"} {
		if _, err := ParseEthtoolChannels(bad); err == nil {
			t.Errorf("ParseEthtoolChannels(%q) accepted", bad)
		}
	}
}

func FuzzParseEthtoolChannels(f *testing.F) {
	f.Add(ethtoolChannels)
	f.Add("Pre-set maximums:\nRX: n/a\n")
	f.Fuzz(func(t *testing.T, text string) {
		_, _ = ParseEthtoolChannels(text)
	})
}
