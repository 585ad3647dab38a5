package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/nodetune/nodetune/detect"
)

// PeerSummary is one peer measurement as doctor presents it: whether it is
// recent enough to count (detect.PeerMaxAge), and how old it was when the
// snapshot was taken.
type PeerSummary struct {
	Peer       string  `json:"peer"`
	Address    string  `json:"address,omitempty"`
	Device     string  `json:"device,omitempty"`
	MTU        int     `json:"mtu,omitempty"`
	At         string  `json:"at"`
	AgeSeconds float64 `json:"age_seconds"`
	// Recent is true when the measurement is at most detect.PeerMaxAge
	// old; the rules use only recent ones, and the text report gives the
	// figures only of those.
	Recent bool              `json:"recent"`
	Cases  []detect.PeerCase `json:"cases"`
}

// peerSummaries turns the snapshot's peer measurements into summaries,
// their age counted at s.Taken.
func peerSummaries(s *detect.Snapshot) []PeerSummary {
	var out []PeerSummary
	for _, m := range s.Peers.Measurements {
		out = append(out, PeerSummary{
			Peer: m.Peer, Address: m.Address, Device: m.Device, MTU: m.MTU,
			At:         m.At.UTC().Format(time.RFC3339),
			AgeSeconds: s.Taken.Sub(m.At).Round(time.Second).Seconds(),
			Recent:     !m.Stale(s.Taken),
			Cases:      m.Cases,
		})
	}
	return out
}

// peers prints one line per peer measurement: the figures of a recent one,
// only its age for a stale one.
func (p *printer) peers(d Document) {
	if err := d.Facts.Peers.Err; err.Failed() {
		p.row("peers", "unknown (%s)", err)
		return
	}
	for i, m := range d.Peers {
		name := ""
		if i == 0 {
			name = "peers"
		}
		who := m.Peer
		if m.Address != "" && m.Address != m.Peer {
			who += " (" + m.Address + ")"
		}
		age := time.Duration(m.AgeSeconds) * time.Second
		if !m.Recent && age < 0 {
			p.row(name, "%s: dated %s after this run (%s), later than this node's clock: its age cannot be told, not used", who, -age, m.At)
			continue
		}
		if !m.Recent {
			p.row(name, "%s: measured %s ago (%s), stale: older than %s, not used", who, age, m.At, detect.PeerMaxAge)
			continue
		}
		var cases []string
		for _, c := range m.Cases {
			s := c.Name + " " + c.Direction + " "
			switch {
			case !c.Err.IsZero():
				s += "failed (" + c.Err.Error() + ")"
			case c.BitsPerSecond <= 0:
				s += "nothing measured"
			default:
				s += detect.Rate(c.BitsPerSecond)
				if c.Bottleneck != "" {
					s += " (" + c.Bottleneck + ")"
				}
			}
			cases = append(cases, s)
		}
		dev := ""
		if m.Device != "" {
			dev = fmt.Sprintf(", copying %s mtu %d", m.Device, m.MTU)
		}
		p.row(name, "%s, measured %s ago%s: %s", who, age, dev, strings.Join(cases, "; "))
	}
}
