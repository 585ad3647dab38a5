package rules

import (
	"errors"
	"fmt"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/shell"
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

var mtuReferences = []string{
	"https://docs.tigera.io/calico/latest/networking/configuring/mtu",
	"https://docs.cilium.io/en/stable/network/concepts/routing/",
}

const mtuExplanation = "A %s packet over %s carries %d bytes of encapsulation. Where pod packets may be larger than the " +
	"underlay's MTU minus that, full-sized packets are fragmented or, with DF set, dropped: large transfers stall while " +
	"small requests work."

func outerFamily(t detect.Tunnel) string {
	if t.IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// mtuJudge is what every MTU finding of one tunnel shares.
type mtuJudge struct {
	t        detect.Tunnel
	overhead int
	limit    int
}

func (j mtuJudge) evidence(extra ...Evidence) []Evidence {
	return append(extra,
		Evidence{"underlay", j.t.Underlay.Name}, Evidence{"underlay_mtu", fmt.Sprint(j.t.Underlay.MTU)},
		Evidence{"underlay_found_by", j.t.Underlay.Source}, Evidence{"outer_family", outerFamily(j.t)},
		Evidence{"overhead_bytes", fmt.Sprint(j.overhead)}, Evidence{"mtu_model", detect.MTUModelOf(j.t)},
	)
}

func (j mtuJudge) finding(subject, summary, manual string, ev []Evidence) Finding {
	return Finding{
		Rule:        TunnelMTUMismatch,
		Severity:    Warning,
		Subject:     subject,
		Summary:     summary,
		Explanation: fmt.Sprintf(mtuExplanation, j.t.Kind, outerFamily(j.t), j.overhead),
		Evidence:    j.evidence(ev...),
		Impact:      Impact{Summary: "fragmentation or black-holed full-sized packets"},
		Fix:         Fix{Manual: manual},
		References:  mtuReferences,
	}
}

func evalMTU(s *detect.Snapshot, c Config, r *Result) {
	if s.Tunnels.Err.Failed() {
		r.unchecked(TunnelMTUMismatch, "", s.Tunnels.Err)
		return
	}
	for _, t := range s.Tunnels.Devices {
		overhead := EncapOverhead(t.Kind, t.IPv6)
		if overhead == 0 {
			continue
		}
		if t.Underlay == nil || t.Underlay.MTU == 0 {
			r.unchecked(TunnelMTUMismatch, t.Name, fmt.Errorf("no underlay found for %s: it is bound to no device and the node has no %s default route", t.Name, outerFamily(t)))
			continue
		}
		j := mtuJudge{t: t, overhead: overhead, limit: t.Underlay.MTU - overhead}
		switch detect.MTUModelOf(t) {
		case detect.MTUModelRoutes:
			judgeRoutes(s, j, r)
		case detect.MTUModelPodInterface:
			judgePodInterfaces(s, j, r)
		default:
			judgeDevice(j, r)
		}
	}
}

// judgeDevice judges a tunnel whose CNI (flannel, Calico) sizes the device
// itself to underlay minus overhead.
func judgeDevice(j mtuJudge, r *Result) {
	t := j.t
	if t.MTU <= j.limit {
		return
	}
	f := j.finding(t.Name,
		fmt.Sprintf("%s has MTU %d but its underlay %s allows at most %d", t.Name, t.MTU, t.Underlay.Name, j.limit),
		"the CNI sets the tunnel MTU; change it in the CNI's configuration (Calico: FelixConfiguration vxlanMTU, or vxlanMTUV6 over IPv6; flannel: the network config) so it survives restarts",
		[]Evidence{{"tunnel_mtu", fmt.Sprint(t.MTU)}})
	f.Fix.Command = shell.Join("ip", "link", "set", "dev", t.Name, "mtu", fmt.Sprint(j.limit))
	r.add(f)
}

// judgeRoutes judges a Cilium tunnel: cilium_vxlan and cilium_geneve keep
// the underlay's MTU on purpose, and Cilium sets the limit on the routes
// that take pod traffic to other nodes. Routes without an MTU of their own
// (the local pod CIDR, the router's address) are not encapsulated.
func judgeRoutes(s *detect.Snapshot, j mtuJudge, r *Result) {
	p := s.PodPath
	if p.RoutesErr.Failed() {
		r.unchecked(TunnelMTUMismatch, j.t.Name, p.RoutesErr)
		return
	}
	judged := 0
	for _, rt := range p.Routes {
		if rt.MTU == 0 {
			continue
		}
		judged++
		if rt.MTU <= j.limit {
			continue
		}
		r.add(j.finding(fmt.Sprintf("route %s dev %s", rt.Dst, rt.Dev),
			fmt.Sprintf("the route to %s via %s has MTU %d but %s over %s allows at most %d", rt.Dst, rt.Dev, rt.MTU, j.t.Name, j.t.Underlay.Name, j.limit),
			"Cilium sets route MTUs from its own MTU setting minus the tunnel's overhead: set the MTU in cilium-config (Helm value MTU) to the underlay's, or leave it unset to detect it, then restart the Cilium agents",
			[]Evidence{{"route", rt.Dst}, {"route_dev", rt.Dev}, {"route_mtu", fmt.Sprint(rt.MTU)}, {"tunnel", j.t.Name}, {"tunnel_mtu", fmt.Sprint(j.t.MTU)}}))
	}
	if judged == 0 {
		r.unchecked(TunnelMTUMismatch, j.t.Name, errors.New("Cilium keeps "+j.t.Name+" at the underlay's MTU and limits pod packets on its routes, "+
			"but no route through its devices carries an MTU here; what would settle it: the MTU of a pod's own routes (ip route inside a pod)"))
	}
}

// judgePodInterfaces judges an Open vSwitch tunnel port: the datapath
// creates it at 65000 on purpose, and the limit is on the pod interfaces.
func judgePodInterfaces(s *detect.Snapshot, j mtuJudge, r *Result) {
	p := s.PodPath
	if p.InterfacesErr.Failed() {
		r.unchecked(TunnelMTUMismatch, j.t.Name, p.InterfacesErr)
		return
	}
	if len(p.Interfaces) == 0 {
		r.unchecked(TunnelMTUMismatch, j.t.Name, errors.New("Open vSwitch limits pod packets on the pod interfaces, and none is attached to its datapath here"))
		return
	}
	for _, pi := range p.Interfaces {
		if pi.MTU <= j.limit {
			continue
		}
		r.add(j.finding(pi.Name,
			fmt.Sprintf("pod interface %s has MTU %d but %s over %s allows at most %d", pi.Name, pi.MTU, j.t.Name, j.t.Underlay.Name, j.limit),
			"the CNI sets pod interface MTUs when pods start (OVN-Kubernetes: its mtu setting; Antrea: transportInterfaceMTU or defaultMTU; Kube-OVN: --mtu): lower it there, then restart the pods; Geneve options can need more than the base 50 bytes",
			[]Evidence{{"pod_interface", pi.Name}, {"pod_interface_mtu", fmt.Sprint(pi.MTU)}, {"datapath", pi.Master}, {"tunnel", j.t.Name}, {"tunnel_mtu", fmt.Sprint(j.t.MTU)}}))
	}
}
