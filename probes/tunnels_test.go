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
