package rules

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
)

// tunnelNode returns a node whose only tunnel is t over eth0 at 1500.
func tunnelNode(t detect.Tunnel) *detect.Snapshot {
	s := node("6.1.0")
	t.Features = detect.Features{State: map[string]bool{detect.FeatureTxChecksumGeneric: true}}
	if t.Underlay == nil {
		t.Underlay = &detect.Underlay{Name: "eth0", MTU: 1500, Source: "default-route"}
	}
	s.Tunnels.Devices = []detect.Tunnel{t}
	return s
}

// TestMTUWherePodPacketsGetIt: each CNI model is judged where it puts the
// limit, and devices sized large on purpose are left alone.
func TestMTUWherePodPacketsGetIt(t *testing.T) {
	ciliumVXLAN := detect.Tunnel{Name: "cilium_vxlan", Kind: detect.KindVXLAN, MTU: 1500}
	ovs := detect.Tunnel{Name: "genev_sys_6081", Kind: detect.KindGeneve, MTU: 65000}
	tests := []struct {
		name      string
		snap      func() *detect.Snapshot
		want      []string
		unchecked []string
	}{
		{
			name: "Cilium: cilium_vxlan at the underlay MTU with routes at 1450",
			snap: func() *detect.Snapshot {
				s := tunnelNode(ciliumVXLAN)
				s.PodPath.Routes = []detect.RouteMTU{
					{Dst: "10.0.1.0/24", Dev: "cilium_host", MTU: 1450, DevMTU: 1500},
					{Dst: "10.0.0.0/24", Dev: "cilium_host", DevMTU: 1500},
				}
				return s
			},
		},
		{
			name: "Cilium: a route to another node's pods at 1500",
			snap: func() *detect.Snapshot {
				s := tunnelNode(ciliumVXLAN)
				s.PodPath.Routes = []detect.RouteMTU{
					{Dst: "10.0.1.0/24", Dev: "cilium_host", MTU: 1450, DevMTU: 1500},
					{Dst: "10.0.2.0/24", Dev: "cilium_host", MTU: 1500, DevMTU: 1500},
				}
				return s
			},
			want: []string{"tunnel-mtu-mismatch route 10.0.2.0/24 dev cilium_host warning auto=false"},
		},
		{
			name:      "Cilium: no route with an MTU to judge",
			snap:      func() *detect.Snapshot { return tunnelNode(ciliumVXLAN) },
			unchecked: []string{"tunnel-mtu-mismatch"},
		},
		{
			name: "OVS: genev_sys_6081 at 65000, pods at 1400",
			snap: func() *detect.Snapshot {
				s := tunnelNode(ovs)
				s.PodPath.Interfaces = []detect.PodInterface{{Name: "a1b2c3d4e5f6", MTU: 1400, Master: "ovs-system"}}
				return s
			},
		},
		{
			name: "OVS: a pod interface at 1500",
			snap: func() *detect.Snapshot {
				s := tunnelNode(ovs)
				s.PodPath.Interfaces = []detect.PodInterface{
					{Name: "a1b2c3d4e5f6", MTU: 1400, Master: "ovs-system"},
					{Name: "f6e5d4c3b2a1", MTU: 1500, Master: "ovs-system"},
				}
				return s
			},
			want: []string{"tunnel-mtu-mismatch f6e5d4c3b2a1 warning auto=false"},
		},
		{
			name:      "OVS: no pod interface attached",
			snap:      func() *detect.Snapshot { return tunnelNode(ovs) },
			unchecked: []string{"tunnel-mtu-mismatch"},
		},
		{
			name: "flannel over IPv6: 1450 is 20 bytes too large",
			snap: func() *detect.Snapshot {
				return tunnelNode(detect.Tunnel{Name: "flannel-v6.1", Kind: detect.KindVXLAN, MTU: 1450, IPv6: true,
					Underlay: &detect.Underlay{Name: "eth0", MTU: 1500, Source: "default-route-v6"}})
			},
			want: []string{"tunnel-mtu-mismatch flannel-v6.1 warning auto=false"},
		},
		{
			name: "flannel over IPv6 at 1430",
			snap: func() *detect.Snapshot {
				return tunnelNode(detect.Tunnel{Name: "flannel-v6.1", Kind: detect.KindVXLAN, MTU: 1430, IPv6: true,
					Underlay: &detect.Underlay{Name: "eth0", MTU: 1500, Source: "default-route-v6"}})
			},
		},
		{
			name: "a tunnel without an underlay is not judged silently",
			snap: func() *detect.Snapshot {
				s := tunnelNode(detect.Tunnel{Name: "vxlan0", Kind: detect.KindVXLAN, MTU: 1500})
				s.Tunnels.Devices[0].Underlay = nil
				return s
			},
			unchecked: []string{"tunnel-mtu-mismatch"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Evaluate(tt.snap(), DefaultConfig())
			var got []string
			for _, f := range fired(r) {
				if len(f) >= len(TunnelMTUMismatch) && f[:len(TunnelMTUMismatch)] == TunnelMTUMismatch {
					got = append(got, f)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			var unchecked []string
			for _, u := range uncheckedRules(r) {
				if u == TunnelMTUMismatch {
					unchecked = append(unchecked, u)
				}
			}
			if diff := cmp.Diff(tt.unchecked, unchecked); diff != "" {
				t.Errorf("unchecked (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMTUCommandQuotesTheDevice: the printed ip link command quotes the
// tunnel's name, which the kernel lets hold shell metacharacters.
func TestMTUCommandQuotesTheDevice(t *testing.T) {
	s := tunnelNode(detect.Tunnel{Name: "v;id", Kind: detect.KindVXLAN, MTU: 1500})
	r := Evaluate(s, DefaultConfig())
	for _, f := range r.Findings {
		if f.Rule == TunnelMTUMismatch {
			if want := "ip link set dev 'v;id' mtu 1450"; f.Fix.Command != want {
				t.Errorf("command %q, want %q", f.Fix.Command, want)
			}
			return
		}
	}
	t.Fatalf("no %s finding: %v", TunnelMTUMismatch, fired(r))
}
