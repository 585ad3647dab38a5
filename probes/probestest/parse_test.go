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
