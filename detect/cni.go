package detect

import (
	"slices"
	"strings"
)

// CNI names nodetune recognises.
const (
	CNICalico  = "calico"
	CNIFlannel = "flannel"
	CNICilium  = "cilium"
	CNIOther   = "other"
	CNINone    = "none"
)

// CNI is which CNI runs on the node, and what gave it away.
type CNI struct {
	Name     string   `json:"name"`
	Evidence []string `json:"evidence,omitempty"`
	// FelixRunning reports whether Calico's agent (calico-node) is running,
	// which means Felix will revert changes to the tunnel offload.
	FelixRunning bool `json:"felix_running"`
}

// Agent process names, as /proc/PID/comm shows them.
const (
	ProcCalicoNode = "calico-node"
	ProcFlanneld   = "flanneld"
	ProcCilium     = "cilium-agent"
	ProcKubeProxy  = "kube-proxy"
)

// WatchedProcesses are the agents the process probe looks for.
var WatchedProcesses = []string{ProcCalicoNode, ProcFlanneld, ProcCilium, ProcKubeProxy}

type cniSign struct {
	cni     string
	devices []string
	config  string // substring of a file name in /etc/cni/net.d
	process string
}

var cniSigns = []cniSign{
	{cni: CNICalico, devices: []string{"vxlan.calico", "vxlan-v6.calico"}, config: "calico", process: ProcCalicoNode},
	{cni: CNIFlannel, devices: []string{"flannel.1", "flannel-v6.1", "flannel-wg"}, config: "flannel", process: ProcFlanneld},
	{cni: CNICilium, devices: []string{"cilium_vxlan", "cilium_geneve", "cilium_host"}, config: "cilium", process: ProcCilium},
}

// DetectCNI works out the CNI from the tunnel devices, the CNI config
// files and the process list already in s. Calico wins over the others when
// several leave traces, because it is the one that fights over the offload.
func DetectCNI(s *Snapshot) CNI {
	var out CNI
	for _, sign := range cniSigns {
		var ev []string
		for _, t := range s.Tunnels.Devices {
			if slices.Contains(sign.devices, t.Name) {
				ev = append(ev, "device "+t.Name)
			}
		}
		for _, f := range s.Host.CNIConfigs {
			if strings.Contains(strings.ToLower(f), sign.config) {
				ev = append(ev, "cni config "+f)
			}
		}
		running := slices.Contains(s.Host.Processes, sign.process)
		if running {
			ev = append(ev, "process "+sign.process)
		}
		if sign.cni == CNICalico {
			out.FelixRunning = running
		}
		if len(ev) > 0 && out.Name == "" {
			out.Name = sign.cni
			out.Evidence = ev
		}
	}
	if out.Name == "" {
		switch {
		case len(s.Host.CNIConfigs) > 0:
			out.Name = CNIOther
			out.Evidence = []string{"cni config " + s.Host.CNIConfigs[0]}
		case len(s.Tunnels.Devices) > 0:
			out.Name = CNIOther
			out.Evidence = []string{"device " + s.Tunnels.Devices[0].Name}
		default:
			out.Name = CNINone
		}
	}
	return out
}

// Owner names an agent that manages a setting and will undo a change to it.
type Owner struct {
	// Name is the agent, such as "calico-felix", or the kind of file, such
	// as "udev-rule".
	Name string `json:"name"`
	// Why says how nodetune knows.
	Why string `json:"why"`
	// DurableFix is how to make the change stick through the owner.
	DurableFix string `json:"durable_fix"`
	// Command is the shell command of DurableFix, when it has one.
	Command string `json:"command,omitempty"`
	// File and Line are where the owner is written down, for files.
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	// Also are further owners of the same setting; Why and DurableFix
	// above already include theirs.
	Also []Owner `json:"also,omitempty"`
}

// Owner names.
const (
	OwnerFelix     = "calico-felix"
	OwnerKubeProxy = "kube-proxy"
)

// felixDevices are the tunnel devices whose tx checksum offload Felix
// switches off while it believes ChecksumOffloadBroken (tunl0 from v3.29).
var felixDevices = []string{"vxlan.calico", "vxlan-v6.calico", "tunl0"}

// OffloadOwners returns everyone who will revert a change to dev's tx
// checksum offload: Calico's Felix, then files that re-apply a setting
// when the link appears, then, if some of those places could not be read,
// an unknown owner that says which.
func OffloadOwners(s *Snapshot, dev string) []Owner {
	var out []Owner
	if f := felixOwner(s, dev); f != nil {
		out = append(out, *f)
	}
	kind := ""
	for _, t := range s.Tunnels.Devices {
		if t.Name == dev {
			kind = t.Kind
		}
	}
	return append(out, fileOwners(s.Ownership, dev, kind)...)
}

// OffloadOwner returns who will revert a change to dev's tx checksum
// offload, or nil when nobody is known to. With several owners it returns
// the first, its Why and DurableFix covering all of them.
func OffloadOwner(s *Snapshot, dev string) *Owner {
	owners := OffloadOwners(s, dev)
	if len(owners) == 0 {
		return nil
	}
	o := owners[0]
	for _, other := range owners[1:] {
		o.Why += "; also " + other.Name + ": " + other.Why
		o.DurableFix += "; and for " + other.Name + ": " + other.DurableFix
		o.Also = append(o.Also, other)
	}
	return &o
}

// felixOwner returns Felix as the owner of dev's offload, or nil.
func felixOwner(s *Snapshot, dev string) *Owner {
	if !slices.Contains(felixDevices, dev) || (s.CNI.Name != CNICalico && !s.CNI.FelixRunning) {
		return nil
	}
	why := "Calico's Felix manages tx checksum offload on " + dev + " and re-applies its own choice about every 10 s"
	if !s.CNI.FelixRunning {
		why += " (calico-node was not seen running, but the device is Calico's)"
	}
	fix := FelixDurableFix(s)
	durable := strings.ReplaceAll(fix.Command, "\n", "; ")
	if len(fix.Notes) > 0 {
		durable += " (" + strings.Join(fix.Notes, "; ") + ")"
	}
	return &Owner{Name: OwnerFelix, Why: why, DurableFix: durable, Command: fix.Command}
}

// ConntrackMaxOwner returns who will undo a raise of
// net.netfilter.nf_conntrack_max, or nil. kube-proxy writes
// max(conntrack.min, conntrack.maxPerCore × cores) when it starts; before
// 1.36 it writes it even over a larger value, lowering a raise at its next
// restart, and from 1.36 it no longer lowers one (kubernetes PR 142035).
// A configuration whose maxPerCore is 0 leaves the limit alone. An
// unknown version is taken for one that lowers, and the reason says so.
func ConntrackMaxOwner(s *Snapshot) *Owner {
	kp := s.KubeProxy
	if !kp.Running && !slices.Contains(s.Host.Processes, ProcKubeProxy) {
		return nil
	}
	if c := kp.Config; c != nil && c.ConntrackMaxPerCore != nil && *c.ConntrackMaxPerCore == 0 {
		return nil
	}
	if kp.Version.AtLeast(ConntrackNoLowerFrom.Major, ConntrackNoLowerFrom.Minor) {
		return nil
	}
	why := "kube-proxy sets net.netfilter.nf_conntrack_max when it starts, lowering a larger value (before 1.36)"
	if !kp.Version.Known() {
		why = "kube-proxy sets net.netfilter.nf_conntrack_max when it starts, and before 1.36 lowers a larger value; its version is unknown"
	}
	return &Owner{
		Name:       OwnerKubeProxy,
		Why:        why,
		DurableFix: "set conntrack.maxPerCore (or conntrack.min) in the KubeProxyConfiguration and restart kube-proxy",
	}
}
