package probes

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
)

// TestIPVSModules reads which IPVS modules a kernel has from fixture
// trees: loaded ones from /proc/modules, and built-in ones from the
// release's modules.builtin, because /sys/module shows a built-in module
// only when it has parameters (ip_vs has, its schedulers have not).
func TestIPVSModules(t *testing.T) {
	const builtin = "kernel/net/netfilter/ipvs/ip_vs.ko\nkernel/net/netfilter/ipvs/ip_vs_rr.ko\n" +
		"kernel/net/netfilter/ipvs/ip_vs_wrr.ko\nkernel/net/netfilter/ipvs/ip_vs_sh.ko\n"
	all := map[string]bool{"ip_vs": true, "ip_vs_rr": true, "ip_vs_wrr": true, "ip_vs_sh": true}
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  map[string]bool
	}{
		{"built in, no module support", map[string]string{
			"sys/kernel/osrelease":                             "6.12.0-1-cloud-amd64\n",
			"lib/modules/6.12.0-1-cloud-amd64/modules.builtin": builtin,
			"module/ip_vs/parameters/conn_tab_bits":            "12\n",
		}, all},
		{"loaded", map[string]string{
			"modules":              "ip_vs_rr 12288 1 - Live 0x0\nip_vs 204800 3 ip_vs_rr, Live 0x0\n",
			"sys/kernel/osrelease": "6.18.0\n",
		}, map[string]bool{"ip_vs": true, "ip_vs_rr": true, "ip_vs_wrr": false, "ip_vs_sh": false}},
		{"absent: no ip_vs at all, so no scheduler either", map[string]string{
			"modules":              "veth 40960 0 - Live 0x0\n",
			"sys/kernel/osrelease": "6.18.0\n",
		}, map[string]bool{"ip_vs": false, "ip_vs_rr": false, "ip_vs_wrr": false, "ip_vs_sh": false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := procTree(t, tt.files)
			got, err := h.ipvsModules()
			if err.Failed() {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestIPVSModulesBuiltinUnknown: ip_vs is built in (it shows in
// /sys/module, not in /proc/modules) and the release's modules.builtin is
// not there (another release's, or the host's /lib/modules not mounted):
// its schedulers, which have no parameters, may be built in too without
// showing anywhere, so whether they are missing is unknown, not false.
func TestIPVSModulesBuiltinUnknown(t *testing.T) {
	h := procTree(t, map[string]string{
		"sys/kernel/osrelease":                             "6.12.0-2-cloud-amd64\n",
		"lib/modules/6.12.0-1-cloud-amd64/modules.builtin": "kernel/net/netfilter/ipvs/ip_vs.ko\nkernel/net/netfilter/ipvs/ip_vs_rr.ko\n",
		"module/ip_vs/parameters/conn_tab_bits":            "12\n",
	})
	got, err := h.ipvsModules()
	if !errors.Is(err, detect.ErrNotSupported) {
		t.Fatalf("ipvsModules() = %v, %v; want unknown (ErrNotSupported)", got, err)
	}
}
