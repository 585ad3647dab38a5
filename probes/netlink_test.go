package probes_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netns"

	"github.com/nodetune/nodetune/probes"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// TestFilteringNetlinkMatchesFullDump: in a testbed namespace, the tunnels
// found through kind-filtered dumps are exactly those a full dump finds.
func TestFilteringNetlinkMatchesFullDump(t *testing.T) {
	for _, kind := range []string{"vxlan", "geneve", "ipip"} {
		t.Run(kind, func(t *testing.T) {
			if !testbedtest.HasKind(t, kind) {
				return
			}
			bed := testbedtest.New(t, testbed.Options{Kind: kind})
			side := bed.A
			ns, err := netns.GetFromName(side.NS)
			if err != nil {
				t.Fatal(err)
			}
			defer ns.Close()
			fnl, err := probes.NewNetlink(ns)
			if err != nil {
				t.Fatal(err)
			}
			defer fnl.Close()

			links, err := fnl.LinkListByKind(kind)
			if err != nil {
				t.Fatal(err)
			}
			if len(links) != 1 || links[0].Attrs().Name != side.Tunnel {
				t.Fatalf("LinkListByKind(%q) = %d links, want only %s", kind, len(links), side.Tunnel)
			}
			if veths, err := fnl.LinkListByKind("veth"); err != nil || len(veths) != 1 || veths[0].Attrs().Name != side.Underlay {
				t.Fatalf("LinkListByKind(veth) = %v, %v; want only %s", veths, err, side.Underlay)
			}

			full, err := probes.NewHost(probes.DefaultPaths, side.Netlink(), side.Ethtool())
			if err != nil {
				t.Fatal(err)
			}
			filtered, err := probes.NewHost(probes.DefaultPaths, fnl, side.Ethtool())
			if err != nil {
				t.Fatal(err)
			}
			want, got := full.Tunnels(), filtered.Tunnels()
			if want.Err.Failed() || len(want.Devices) != 1 {
				t.Fatalf("full dump: %v, %d tunnels", want.Err, len(want.Devices))
			}
			wj, _ := json.MarshalIndent(want, "", " ")
			gj, _ := json.MarshalIndent(got, "", " ")
			if diff := cmp.Diff(string(wj), string(gj)); diff != "" {
				t.Errorf("tunnels through kind-filtered dumps differ (-full +filtered):\n%s", diff)
			}
		})
	}
}
