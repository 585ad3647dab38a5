package probes

import (
	"testing"

	"github.com/google/go-cmp/cmp"
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
		{"built in, modules.builtin of another release", map[string]string{
			"sys/kernel/osrelease":                             "6.12.0-2-cloud-amd64\n",
			"lib/modules/6.12.0-1-cloud-amd64/modules.builtin": builtin,
			"module/ip_vs/parameters/conn_tab_bits":            "12\n",
		}, map[string]bool{"ip_vs": true, "ip_vs_rr": false, "ip_vs_wrr": false, "ip_vs_sh": false}},
		{"loaded", map[string]string{
			"modules":              "ip_vs_rr 12288 1 - Live 0x0\nip_vs 204800 3 ip_vs_rr, Live 0x0\n",
			"sys/kernel/osrelease": "6.18.0\n",
		}, map[string]bool{"ip_vs": true, "ip_vs_rr": true, "ip_vs_wrr": false, "ip_vs_sh": false}},
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
