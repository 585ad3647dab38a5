package report

import (
	"errors"

	"github.com/nodetune/nodetune/detect"
)

// udp prints the UDP checksum counters and what a capture traced them to.
func (p *printer) udp(u detect.UDP) {
	switch {
	case u.Err.Failed():
		p.row("udp", "checksum errors unknown (%s)", u.Err)
	default:
		p.row("udp", "%d bad checksums received in the window (%d since boot)", u.Delta, u.InCsumErrors)
	}
	switch {
	case errors.Is(u.Err6, detect.ErrNotSupported):
	case u.Err6.Failed():
		p.row("udp6", "checksum errors unknown (%s)", u.Err6)
	default:
		p.row("udp6", "%d bad checksums received in the window (%d since boot)", u.Delta6, u.InCsumErrors6)
	}
	c := u.Capture
	switch v := u.ChecksumVerdict(); {
	case v == detect.AttrUnattributed && c != nil && c.Err.Failed():
		p.row("udp", "bad checksums unattributed: %s", c.Err)
	case v == detect.AttrUnattributed && c != nil && c.OtherBad > 0:
		p.row("udp", "bad checksums unattributed: a %s capture of %d UDP packets saw %d of the %d the kernel counted meanwhile, all to other ports",
			c.Duration, c.Inspected, c.OtherBad, c.CounterDelta)
		p.sources(c)
	case v == detect.AttrUnattributed && c != nil:
		p.row("udp", "bad checksums unattributed: a %s capture of %d UDP packets saw none", c.Duration, c.Inspected)
	case c != nil && !c.Err.Failed():
		p.row("udp", "a %s capture verified %d UDP packets: %d bad to tunnel ports, %d bad to other ports", c.Duration, c.Inspected, c.TunnelBad, c.OtherBad)
		p.sources(c)
	}
	p.reported(u.Reported)
}

// reported prints what other nodes reported about this node's tunnel
// packets: nothing outside a cluster.
func (p *printer) reported(r *detect.ChecksumReports) {
	switch {
	case r == nil:
	case r.Err.Failed():
		p.row("reported", "what other nodes reported about this node's tunnel packets is unknown: %s", r.Err)
	case len(r.Reports) == 0:
		p.row("reported", "no other node reported bad checksums on tunnel packets from %s", r.Node)
	default:
		p.row("reported", "%d reports by other nodes of bad checksums on tunnel packets from %s:", len(r.Reports), r.Node)
		for _, rep := range r.Reports {
			p.row("", "  %s", rep)
		}
	}
}

// sources prints the senders a capture named, one a line.
func (p *printer) sources(c *detect.ChecksumCapture) {
	for _, s := range c.Sources {
		where := "other port"
		if s.Tunnel != "" {
			where = "tunnel " + s.Tunnel
		}
		p.row("", "  %d bad from %s (%s)", s.Count, s, where)
	}
}
