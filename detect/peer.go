package detect

import (
	"strings"
	"time"
)

// Peer measurement case names, stable: JSON, metrics and rules use them.
const (
	// PeerCaseHost is TCP between the two nodes' underlay addresses.
	PeerCaseHost = "host"
	// PeerCaseTunnel is TCP to the peer's address on its CNI tunnel
	// device: the path pod traffic takes between the nodes.
	PeerCaseTunnel = "tunnel"
	// PeerCaseOffloadOn and PeerCaseOffloadOff are a temporary tunnel of
	// the CNI tunnel's kind and MTU over the same underlay, measured with
	// tx checksum offload on and off on the sending end.
	PeerCaseOffloadOn  = "tunnel-offload-on"
	PeerCaseOffloadOff = "tunnel-offload-off"
)

// PeerMeasurement is what one measurement between this node and another
// node found on the real path. It is evidence about this node pair's path,
// not about every node.
type PeerMeasurement struct {
	// Peer names the other node: its Node name in a cluster, else the
	// address it was reached at.
	Peer string `json:"peer"`
	// Address is the peer's underlay address.
	Address string `json:"address"`
	// Device is this node's CNI tunnel device whose kind and MTU the
	// temporary tunnel copied, empty when there is none.
	Device string `json:"device,omitempty"`
	// MTU is that device's MTU when measured; the measurement is evidence
	// about the device only while its MTU is the same.
	MTU int `json:"mtu,omitempty"`
	// At is when the measurement ended.
	At    time.Time  `json:"at"`
	Cases []PeerCase `json:"cases"`
}

// PeerCase is one measured path of a peer measurement.
type PeerCase struct {
	// Name is one of the PeerCase* constants.
	Name string `json:"name"`
	// Direction is "send" (this node to the peer) or "receive".
	Direction string `json:"direction"`
	// BitsPerSecond is the TCP payload received per second.
	BitsPerSecond float64 `json:"bits_per_second"`
	// Bottleneck says what limited the run, for example "cpu1 at 100%
	// softirq on the receiver"; empty when nothing stood out.
	Bottleneck string `json:"bottleneck,omitempty"`
	// Err says why the case could not be measured.
	Err Err `json:"error,omitzero"`
}

// Directions of a peer case.
const (
	PeerSend    = "send"
	PeerReceive = "receive"
)

// Case returns the measured case name in direction dir, if it was measured
// without error.
func (m PeerMeasurement) Case(name, dir string) (PeerCase, bool) {
	for _, c := range m.Cases {
		if c.Name == name && c.Direction == dir && c.Err.IsZero() && c.BitsPerSecond > 0 {
			return c, true
		}
	}
	return PeerCase{}, false
}

// OffloadEffect is what tx checksum offload on the sending end did to the
// temporary tunnel's throughput from this node to the peer: the rates with
// it on and off, and whether both were measured.
func (m PeerMeasurement) OffloadEffect() (on, off float64, ok bool) {
	cOn, okOn := m.Case(PeerCaseOffloadOn, PeerSend)
	cOff, okOff := m.Case(PeerCaseOffloadOff, PeerSend)
	if !okOn || !okOff {
		return 0, 0, false
	}
	return cOn.BitsPerSecond, cOff.BitsPerSecond, true
}

// Name prefixes of the temporary tunnel devices a peer measurement makes
// (bench): the responder's end is ntpr-<pid>, the measurer's ntpm-<pid>.
// They last one session, carry the alias "nodetune-peer pid=... expires=...",
// and are not the node's tunnels.
const (
	PeerResponderDevicePrefix = "ntpr-"
	PeerMeasurerDevicePrefix  = "ntpm-"
)

// PeerTunnelAliasTag is the first word of the alias of every temporary
// peer tunnel.
const PeerTunnelAliasTag = "nodetune-peer"

// IsPeerTunnelLink reports whether a link with this name and alias is a
// peer measurement's temporary tunnel: both its name and the alias bench
// gives it must say so, so that a node's own device that merely has such
// a name is still judged.
func IsPeerTunnelLink(name, alias string) bool {
	return IsPeerTunnel(name) && strings.HasPrefix(alias, PeerTunnelAliasTag+" ")
}

// IsPeerTunnel reports whether a device named name is a peer measurement's
// temporary tunnel by its name alone (IsPeerTunnelLink also checks the
// alias).
func IsPeerTunnel(name string) bool {
	for _, p := range []string{PeerResponderDevicePrefix, PeerMeasurerDevicePrefix} {
		if rest, ok := strings.CutPrefix(name, p); ok && rest != "" && strings.Trim(rest, "0123456789") == "" && rest[0] != '0' {
			return true
		}
	}
	return false
}
