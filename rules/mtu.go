package rules

import (
	"fmt"

	"github.com/nodetune/nodetune/detect"
)

// EncapOverhead is the bytes a tunnel of kind adds to each packet, with an
// IPv4 or IPv6 outer header.
func EncapOverhead(kind string, ipv6 bool) int {
	ip := 20
	if ipv6 {
		ip = 40
	}
	switch kind {
	case detect.KindVXLAN, detect.KindGeneve:
		return ip + 8 + 8 + 14 // outer IP, UDP, VXLAN/Geneve base header, inner Ethernet
	case detect.KindIPIP:
		return ip
	}
	return 0
}

func evalMTU(s *detect.Snapshot, c Config, r *Result) {
	if s.Tunnels.Err.Failed() {
		r.unchecked(TunnelMTUMismatch, "", s.Tunnels.Err)
		return
	}
	for _, t := range s.Tunnels.Devices {
		overhead := EncapOverhead(t.Kind, t.IPv6)
		if t.Underlay == nil || overhead == 0 || t.Underlay.MTU == 0 {
			continue
		}
		limit := t.Underlay.MTU - overhead
		if t.MTU <= limit {
			continue
		}
		r.add(Finding{
			Rule:     TunnelMTUMismatch,
			Severity: Warning,
			Subject:  t.Name,
			Summary:  fmt.Sprintf("%s has MTU %d but its underlay %s allows at most %d", t.Name, t.MTU, t.Underlay.Name, limit),
			Explanation: fmt.Sprintf("A %s packet carries %d bytes of encapsulation. With the tunnel MTU above the underlay's "+
				"MTU minus that, full-sized packets are fragmented or, with DF set, dropped: large transfers stall while "+
				"small requests work.", t.Kind, overhead),
			Evidence: []Evidence{
				{"tunnel_mtu", fmt.Sprint(t.MTU)}, {"underlay", t.Underlay.Name}, {"underlay_mtu", fmt.Sprint(t.Underlay.MTU)},
				{"underlay_found_by", t.Underlay.Source}, {"overhead_bytes", fmt.Sprint(overhead)},
			},
			Impact: Impact{Summary: "fragmentation or black-holed full-sized packets"},
			Fix: Fix{
				Command: fmt.Sprintf("ip link set dev %s mtu %d", t.Name, limit),
				Manual:  "the CNI sets the tunnel MTU; change it in the CNI's configuration (Calico: FelixConfiguration vxlanMTU; flannel: the network config) so it survives restarts",
			},
			References: []string{"https://docs.tigera.io/calico/latest/networking/configuring/mtu"},
		})
	}
}
