package detect

import "strings"

// MTU models: where a CNI puts the limit that keeps encapsulated pod
// packets within the underlay's MTU.
const (
	// MTUModelDevice is flannel's and Calico's: the tunnel device itself
	// is set to the underlay's MTU minus the overhead.
	MTUModelDevice = "device"
	// MTUModelRoutes is Cilium's: cilium_vxlan and cilium_geneve keep the
	// underlay's full MTU, and the overhead comes off the routes to pods.
	MTUModelRoutes = "routes"
	// MTUModelPodInterface is Open vSwitch's (OVN-Kubernetes, Antrea,
	// Kube-OVN): the datapath's tunnel port is created at 65000 on
	// purpose, and the limit is the pod interface's MTU.
	MTUModelPodInterface = "pod-interface"
)

// ovsTunnelPrefixes are the names the Open vSwitch kernel datapath gives
// the tunnel devices of its vports ("genev_sys_6081", "vxlan_sys_4789").
var ovsTunnelPrefixes = []string{"genev_sys_", "vxlan_sys_", "gre_sys", "stt_sys_"}

// CiliumRouteDevices are the devices Cilium routes pod traffic through.
var CiliumRouteDevices = []string{"cilium_host", "cilium_net", "cilium_vxlan", "cilium_geneve"}

// MTUModelOf says where the CNI that made t limits the MTU of pod packets.
func MTUModelOf(t Tunnel) string {
	switch {
	case t.Name == "cilium_vxlan" || t.Name == "cilium_geneve":
		return MTUModelRoutes
	case hasAnyPrefix(t.Name, ovsTunnelPrefixes):
		return MTUModelPodInterface
	}
	return MTUModelDevice
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// PodPath is where pod packets get their MTU on nodes whose CNI does not
// put the limit on the tunnel device. The probe reads each part only when
// a tunnel of that model exists.
type PodPath struct {
	// Routes are the routes through Cilium's devices, with their MTU.
	Routes    []RouteMTU `json:"routes,omitempty"`
	RoutesErr Err        `json:"routes_error,omitzero"`
	// Interfaces are the host ends of pod veths attached to an Open
	// vSwitch datapath.
	Interfaces    []PodInterface `json:"interfaces,omitempty"`
	InterfacesErr Err            `json:"interfaces_error,omitzero"`
}

// RouteMTU is one route and the MTU packets sent by it get.
type RouteMTU struct {
	// Dst is the destination prefix, "default" for a default route.
	Dst string `json:"dst"`
	Dev string `json:"dev"`
	// MTU is the route's own MTU (ip route ... mtu N), 0 when it has none
	// and the device's applies.
	MTU    int  `json:"mtu,omitempty"`
	DevMTU int  `json:"dev_mtu"`
	IPv6   bool `json:"ipv6,omitempty"`
}

// Effective is the MTU a packet sent by the route gets.
func (r RouteMTU) Effective() int {
	if r.MTU > 0 {
		return r.MTU
	}
	return r.DevMTU
}

// PodInterface is the host end of a pod's veth.
type PodInterface struct {
	Name   string `json:"name"`
	MTU    int    `json:"mtu"`
	Master string `json:"master"`
}
