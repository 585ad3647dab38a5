// Package testbed builds a throwaway two-host network: two named network
// namespaces joined by a veth pair (the underlay), with a VXLAN, Geneve or
// IPIP tunnel on top of it, so that TCP can flow from side A to side B
// through the tunnel exactly as pod traffic crosses nodes.
//
// The namespaces are bind-mounted under /run/netns, so `ip netns exec NAME`
// sees them while they live. Their names carry the creating process's pid
// (Prefix-<pid>-<n>-a), so Sweep can find the leftovers of a process that
// died before it could clean up.
//
// Building a bed needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN). It never
// touches the host's own interfaces.
package testbed
