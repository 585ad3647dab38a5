package bench

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nodetune/nodetune/detect"
)

// WritePeerText writes r as the table `nodetune bench --peer` prints.
func WritePeerText(w io.Writer, r PeerResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "between this node and %s (%s)", r.Peer, r.Address)
	if r.Device != "" {
		fmt.Fprintf(&b, ", CNI tunnel %s here", r.Device)
	}
	if r.PeerDevice != "" {
		fmt.Fprintf(&b, ", %s there", r.PeerDevice)
	}
	fmt.Fprintf(&b, "\ntemporary %s tunnel, MTU %d; %s, %s per case after a %s warm-up\n\n",
		r.Kind, r.TunnelMTU, plural(r.Streams, "TCP stream"), r.Duration.Round(time.Millisecond), r.Warmup.Round(time.Millisecond))
	width := len("CASE")
	for _, c := range r.Cases {
		width = max(width, len(c.Name))
	}
	fmt.Fprintf(&b, "%-*s  %-9s %12s  %s\n", width, "CASE", "DIRECTION", "THROUGHPUT", "LIMITED BY")
	for _, c := range r.Cases {
		rate, note := detect.Rate(c.BitsPerSecond), c.Bottleneck
		if c.Err.Failed() {
			rate, note = "-", "not measured: "+c.Err.Error()
		}
		fmt.Fprintf(&b, "%-*s  %-9s %12s  %s\n", width, c.Name, c.Direction, rate, note)
	}
	m := r.Measurement()
	if on, off, ok := m.OffloadEffect(); ok {
		fmt.Fprintf(&b, "\nsending from here, tx checksum offload on gave %s, off %s", detect.Rate(on), detect.Rate(off))
		if on < off {
			b.WriteString(": offload HURTS on this path")
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
