package probes

import (
	"errors"
	"testing"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
)

// interrupting is a Netlink whose first dumps the kernel interrupts.
type interrupting struct {
	interruptions int
	calls         int
}

func (n *interrupting) LinkList() ([]netlink.Link, error) {
	n.calls++
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vxlan0", Index: 2}}
	if n.calls <= n.interruptions {
		return []netlink.Link{}, netlink.ErrDumpInterrupted
	}
	return []netlink.Link{vx}, nil
}

func (n *interrupting) RouteList(netlink.Link, int) ([]netlink.Route, error) { return nil, nil }

type noFeatures struct{}

func (noFeatures) FeaturesWithState(string) (map[string]ethtool.FeatureState, error) { return nil, nil }

func TestTunnelsRetriesInterruptedDumps(t *testing.T) {
	for _, tt := range []struct {
		interruptions int
		ok            bool
	}{{0, true}, {2, true}, {dumpRetries, false}} {
		nl := &interrupting{interruptions: tt.interruptions}
		h := procTree(t, nil)
		h.Netlink, h.Ethtool = nl, noFeatures{}
		got := h.Tunnels()
		if ok := !got.Err.Failed() && len(got.Devices) == 1; ok != tt.ok {
			t.Errorf("%d interruptions: tunnels %+v, err %v; want ok=%v", tt.interruptions, got.Devices, got.Err, tt.ok)
		}
		if !tt.ok && !errors.Is(got.Err, netlink.ErrDumpInterrupted) {
			t.Errorf("after %d interruptions the error should say the dump was interrupted: %v", dumpRetries, got.Err)
		}
	}
}

// TestGeneveOuterChecksumUnknown: the netlink library fills a Geneve
// link's UDP checksum fields only when it creates one, never from a dump
// (v1.3.1 does not parse IFLA_GENEVE_UDP_CSUM or the ZERO_CSUM6 flags), so
// a dumped Geneve device's outer checksum settings are unknown, not "zero
// checksums": an unsafe verdict on them must not be automatic.
func TestGeneveOuterChecksumUnknown(t *testing.T) {
	dumped := &netlink.Geneve{LinkAttrs: netlink.LinkAttrs{Name: "genev_sys_6081", Index: 5}, ID: 0, Dport: 6081}
	tun, _, _, ok := tunnelOf(dumped)
	if !ok {
		t.Fatal("a Geneve link is not a tunnel")
	}
	if tun.OuterChecksum != nil {
		t.Errorf("outer checksum settings %+v, want unknown (nil)", *tun.OuterChecksum)
	}
	if _, known := tun.SendsZeroChecksum(); known {
		t.Error("SendsZeroChecksum claims to know")
	}
}

// TestExternalVXLANChecksumPerPacket: an external (collect_md) VXLAN
// device's udpcsum does not say what its packets carry.
func TestExternalVXLANChecksumPerPacket(t *testing.T) {
	tun, _, _, _ := tunnelOf(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "cilium_vxlan"}, FlowBased: true, UDPCSum: true})
	if tun.OuterChecksum == nil || !tun.OuterChecksum.PerPacket {
		t.Fatalf("outer checksum %+v, want per packet", tun.OuterChecksum)
	}
	if _, known := tun.SendsZeroChecksum(); known {
		t.Error("SendsZeroChecksum claims to know")
	}
}

// listed is a Netlink that lists the links given.
type listed []netlink.Link

func (l listed) LinkList() ([]netlink.Link, error)                  { return l, nil }
func (listed) RouteList(netlink.Link, int) ([]netlink.Route, error) { return nil, nil }

// TestTunnelsLeavePeerMeasurementDevicesOut: a peer measurement's
// temporary tunnel (its name and its alias say so) is not one of the
// node's tunnels; a device that only has such a name is.
func TestTunnelsLeavePeerMeasurementDevicesOut(t *testing.T) {
	vx := func(name, alias string, idx int) netlink.Link {
		return &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: name, Alias: alias, Index: idx}, VxlanId: 1, Port: 4789}
	}
	h := procTree(t, nil)
	h.Netlink, h.Ethtool = listed{
		vx("vxlan.calico", "", 2),
		vx("ntpm-4242", "nodetune-peer pid=4242 expires=1900000000", 3),
		vx("ntpr-77", "", 4),
	}, noFeatures{}
	got := h.Tunnels()
	var names []string
	for _, d := range got.Devices {
		names = append(names, d.Name)
	}
	if len(names) != 2 || names[0] != "ntpr-77" || names[1] != "vxlan.calico" {
		t.Errorf("tunnels %v, want ntpr-77 (no alias) and vxlan.calico", names)
	}
	if len(got.PeerMeasurement) != 1 || got.PeerMeasurement[0] != "ntpm-4242" {
		t.Errorf("peer measurement devices %v, want [ntpm-4242]", got.PeerMeasurement)
	}
}
