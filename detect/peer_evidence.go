package detect

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Peers are the last peer measurement to each peer this node measured (the
// state file serve and bench keep), as read by the probe.
type Peers struct {
	Measurements []PeerMeasurement `json:"measurements,omitempty"`
	Err          Err               `json:"error,omitzero"`
}

// PeerMaxAge is how old a peer measurement may be and still count: as
// evidence for the rules and tune, and as "recent" for doctor. serve
// measures each peer hourly by default, so six hours survive a few failed
// runs; an older figure may describe a kernel, driver or path that has
// since changed.
const PeerMaxAge = 6 * time.Hour

// OffloadHurtsMargin is how much slower, as a share of the offload-off
// rate, the offload-on case must run before nodetune says offload hurts:
// two runs over a real path differ by a few percent with nothing changed.
const OffloadHurtsMargin = 0.10

// PeerClockSlack is how far after now a measurement may be dated and
// still count: further means the clock was set back since it was taken,
// and its age cannot be told.
const PeerClockSlack = 5 * time.Minute

// Stale reports whether m does not count at now: too old, or dated after
// now by more than PeerClockSlack.
func (m PeerMeasurement) Stale(now time.Time) bool {
	return m.At.IsZero() || now.Sub(m.At) > PeerMaxAge || m.At.Sub(now) > PeerClockSlack
}

// UsableFor says why m is not evidence about tunnel device t at now, or ""
// when it is: it must be recent, and measured with a temporary tunnel
// copied from this very device at its present MTU.
func (m PeerMeasurement) UsableFor(t Tunnel, now time.Time) string {
	switch {
	case m.At.Sub(now) > PeerClockSlack:
		return fmt.Sprintf("the measurement against %s is dated %s, later than this node's clock (%s): its age cannot be told",
			m.Peer, m.At.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case m.Stale(now):
		return fmt.Sprintf("the measurement against %s is from %s, older than %s", m.Peer, m.At.UTC().Format(time.RFC3339), PeerMaxAge)
	case m.Device != t.Name:
		return fmt.Sprintf("the measurement against %s copied device %q, not %s", m.Peer, m.Device, t.Name)
	case m.MTU == 0:
		return fmt.Sprintf("the measurement against %s does not record the MTU it copied", m.Peer)
	case m.MTU != t.MTU:
		return fmt.Sprintf("the measurement against %s was made at MTU %d; %s is at %d now", m.Peer, m.MTU, t.Name, t.MTU)
	}
	return ""
}

// OffloadMeasure is what a peer measurement says about tx checksum offload
// on one tunnel device: the temporary tunnel's rate from this node to the
// peer with offload on and with it off.
type OffloadMeasure struct {
	Peer    string
	At      time.Time
	On, Off float64
}

// Hurts reports whether offload on ran measurably slower than off.
func (o OffloadMeasure) Hurts() bool { return o.On < o.Off*(1-OffloadHurtsMargin) }

// Loss is the share of the offload-on rate lost with offload off, 0 when
// off was not slower.
func (o OffloadMeasure) Loss() float64 {
	if o.On <= 0 || o.Off >= o.On {
		return 0
	}
	return 1 - o.Off/o.On
}

// String gives both figures and the peer, for findings.
func (o OffloadMeasure) String() string {
	return fmt.Sprintf("%s with tx checksum offload on, %s with it off, from this node to %s at %s",
		Rate(o.On), Rate(o.Off), o.Peer, o.At.UTC().Format(time.RFC3339))
}

// Rate formats bits per second for a person: "6.9 Gbit/s".
func Rate(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.1f Gbit/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.0f Mbit/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.0f kbit/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f bit/s", bps)
}

// OffloadEvidence is what the peer measurements say about tx checksum
// offload on tunnel t at now. When a usable measurement shows offload
// hurting, that one is returned (one slow path is reason enough not to
// turn it on); else the newest usable one. ok is false when none is
// usable, and then why says what would settle it.
func (p Peers) OffloadEvidence(t Tunnel, now time.Time) (o OffloadMeasure, ok bool, why string) {
	var reasons []string
	var best *OffloadMeasure
	for _, m := range p.Measurements {
		if r := m.UsableFor(t, now); r != "" {
			reasons = append(reasons, r)
			continue
		}
		on, off, measured := m.OffloadEffect()
		if !measured {
			reasons = append(reasons, fmt.Sprintf("the measurement against %s has no offload-on and offload-off rates from this node", m.Peer))
			continue
		}
		cur := OffloadMeasure{Peer: m.Peer, At: m.At, On: on, Off: off}
		switch {
		case best == nil,
			cur.Hurts() && !best.Hurts(),
			cur.Hurts() == best.Hurts() && cur.At.After(best.At):
			best = &cur
		}
	}
	if best != nil {
		return *best, true, ""
	}
	slices.Sort(reasons)
	why = "no peer measurement of " + t.Name + " on this node"
	if len(reasons) > 0 {
		why = strings.Join(reasons, "; ")
	}
	return OffloadMeasure{}, false, why + "; `nodetune bench --peer NODE` (or serve's peer schedule) measures the path from this node with offload on and off"
}

// PeerOffloadOnBlocked says why a peer measurement forbids turning tx
// checksum offload on for device dev, or "": a recent measurement of this
// device at its present MTU found offload on measurably slower than off.
// The rules and tune's gate for turning offload on share it, as they share
// UDP.OffloadOnBlocked.
func (s *Snapshot) PeerOffloadOnBlocked(dev string) string {
	for _, t := range s.Tunnels.Devices {
		if t.Name != dev {
			continue
		}
		if o, ok, _ := s.Peers.OffloadEvidence(t, s.Taken); ok && o.Hurts() {
			return "offload on measured slower than off on this path: " + o.String() + "; tx checksum offload stays off"
		}
	}
	return ""
}
