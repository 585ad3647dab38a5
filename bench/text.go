package bench

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nodetune/nodetune/detect"
)

// WriteText writes r as the table `nodetune bench` prints.
func WriteText(w io.Writer, r Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s tunnel %s, MTU %d, over a veth underlay with MTU %d", r.Kind, r.Tunnel, r.TunnelMTU, r.UnderlayMTU)
	if r.Mirrored != "" {
		fmt.Fprintf(&b, " (mirroring this node's %s)", r.Mirrored)
	}
	fmt.Fprintf(&b, "\n%s, %s per case after a %s warm-up\n\n",
		plural(r.Streams, "TCP stream"), r.Duration.Round(time.Millisecond), r.Warmup.Round(time.Millisecond))

	width := len("CASE")
	for _, c := range r.Cases {
		width = max(width, len(c.Name))
	}
	fmt.Fprintf(&b, "%-*s  %12s\n", width, "CASE", "THROUGHPUT")
	on, hasOn := r.Case(CaseOffloadOn)
	under, hasUnder := r.Case(CaseUnderlay)
	for _, c := range r.Cases {
		note := ""
		switch {
		case c.Name == CaseOffloadOn && hasUnder && under.BitsPerSecond > 0:
			note = fmt.Sprintf("  %s of underlay", percent(c.BitsPerSecond/under.BitsPerSecond))
		case c.Name != CaseOffloadOn && c.Path == PathTunnel && hasOn && on.BitsPerSecond > 0:
			note = fmt.Sprintf("  %s of offload-on", percent(c.BitsPerSecond/on.BitsPerSecond))
		}
		fmt.Fprintf(&b, "%-*s  %12s%s\n", width, c.Name, detect.Rate(c.BitsPerSecond), note)
	}
	b.WriteString("\n")
	switch t := r.Ratios.TunnelOverUnderlay; {
	case t >= 1:
		fmt.Fprintf(&b, "tunnel/underlay  %.2f  the tunnel cost nothing measurable\n", t)
	case t > 0:
		fmt.Fprintf(&b, "tunnel/underlay  %.2f  the tunnel costs %s of the underlay's throughput\n", t, percent(1-t))
	}
	if r.MeasuredLoss != nil {
		fmt.Fprintf(&b, "off/on           %.2f  tx checksum offload off costs %s of the tunnel's throughput\n",
			r.Ratios.OffOverOn, percent(*r.MeasuredLoss))
	}
	if r.Ratios.NodeOverOn > 0 {
		fmt.Fprintf(&b, "node/on          %.2f  with this node's own tunnel features\n", r.Ratios.NodeOverOn)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func percent(r float64) string { return fmt.Sprintf("%.0f%%", r*100) }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
