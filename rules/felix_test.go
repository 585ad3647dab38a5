package rules

import (
	"testing"

	"github.com/nodetune/nodetune/detect"
)

// felixNode is a node whose vxlan.calico Felix keeps off, on a kernel
// with the fix, with the FelixConfigurations read.
func felixNode(t *testing.T) *detect.Snapshot {
	t.Helper()
	v, err := detect.ParseRelease("6.18.0")
	if err != nil {
		t.Fatal(err)
	}
	return &detect.Snapshot{
		Kernel: detect.Kernel{Release: "6.18.0", Version: v},
		Tunnels: detect.Tunnels{Devices: []detect.Tunnel{{Name: "vxlan.calico", Kind: detect.KindVXLAN, Port: 4789,
			Features: detect.Features{State: map[string]bool{detect.FeatureTxChecksumGeneric: false}}}}},
		CNI:   detect.CNI{Name: detect.CNICalico, FelixRunning: true},
		Felix: detect.FelixObjects{Read: true, APIVersion: "crd.projectcalico.org/v1", Node: "n1"},
	}
}

func checksumOff(t *testing.T, s *detect.Snapshot) Finding {
	t.Helper()
	for _, f := range Evaluate(s, DefaultConfig()).Findings {
		if f.Rule == TunnelTxChecksumOff {
			return f
		}
	}
	t.Fatalf("no %s finding", TunnelTxChecksumOff)
	return Finding{}
}

// TestFelixCooperationChanges: with the FelixConfigurations read, the fix
// of a Felix-owned device is the override of node.<name>, then offload;
// not where they were not read, nor where calico-node's environment sets
// the override, which wins over every FelixConfiguration.
func TestFelixCooperationChanges(t *testing.T) {
	s := felixNode(t)
	f := checksumOff(t, s)
	if len(f.Fix.Changes) != 2 || f.Fix.Changes[0].Kind != ChangeFelixConfiguration || f.Fix.Changes[0].Target != "node.n1" ||
		f.Fix.Changes[1].Kind != ChangeFeature {
		t.Errorf("changes %+v; want the override of node.n1, then offload", f.Fix.Changes)
	}
	s.Felix = detect.FelixObjects{}
	if f := checksumOff(t, s); len(f.Fix.Changes) != 1 {
		t.Errorf("without the objects read: %+v", f.Fix.Changes)
	}
	s = felixNode(t)
	s.Ownership.Calico.EnvOverrideSet, s.Ownership.Calico.EnvOverride = true, "ChecksumOffloadBroken=true"
	if f := checksumOff(t, s); len(f.Fix.Changes) != 1 {
		t.Errorf("with calico-node's environment setting the override: %+v", f.Fix.Changes)
	}
}
