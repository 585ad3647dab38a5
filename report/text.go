package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/shell"
	"github.com/nodetune/nodetune/rules"
)

// TextOptions control the text report.
type TextOptions struct {
	// Color adds ANSI colours; use it only on a terminal.
	Color bool
	// Width is where explanations wrap.
	Width int
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
	ansiDim    = "\x1b[2m"
)

type printer struct {
	w   io.Writer
	opt TextOptions
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) paint(code, s string) string {
	if !p.opt.Color {
		return s
	}
	return code + s + ansiReset
}

var severityColor = map[rules.Severity]string{rules.Critical: ansiRed, rules.Warning: ansiYellow, rules.Info: ansiCyan}

// WriteText writes d as the doctor's human-readable report: a summary of
// the node, then each finding, most severe first, then what could not be
// checked.
func WriteText(w io.Writer, d Document, opt TextOptions) error {
	if opt.Width <= 0 {
		opt.Width = 100
	}
	p := &printer{w: w, opt: opt}
	p.summary(d)
	p.findings(d.Findings)
	p.unchecked(d.Unchecked)
	return p.err
}

// row prints one line of the summary. What it says comes from the node
// (device names may hold control characters), so it is escaped.
func (p *printer) row(name, format string, args ...any) {
	p.printf("  %-11s %s\n", name, shell.Escape(fmt.Sprintf(format, args...)))
}

func (p *printer) summary(d Document) {
	s := d.Facts
	p.printf("%s\n", p.paint(ansiBold, fmt.Sprintf("nodetune doctor: rates over %.1fs", d.WindowSeconds)))
	if d.Kernel.Error != "" {
		p.row("kernel", "unknown (%s)", d.Kernel.Error)
	} else {
		p.row("kernel", "%s (NAT checksum fix: %s)", d.Kernel.Release, d.Kernel.NATChecksumFix)
	}
	cni := s.CNI.Name
	if len(s.CNI.Evidence) > 0 {
		cni += " (" + strings.Join(s.CNI.Evidence, ", ") + ")"
	}
	p.row("cni", "%s", cni)
	p.tunnels(s.Tunnels)
	p.cpu(s.CPU)
	if s.Softnet.Err.Failed() {
		p.row("softnet", "unknown (%s)", s.Softnet.Err)
	} else {
		dl := s.Softnet.Delta
		limits := "netdev limits unreadable here"
		if s.Softnet.MaxBacklog > 0 && s.Softnet.Budget > 0 {
			limits = fmt.Sprintf("netdev_max_backlog %d, netdev_budget %d", s.Softnet.MaxBacklog, s.Softnet.Budget)
		}
		p.row("softnet", "%d packets, %d dropped, %d squeezed in the window (%s)", dl.Processed, dl.Dropped, dl.TimeSqueezed, limits)
	}
	p.conntrack(s.Conntrack)
	p.udp(s.UDP)
	p.kubeProxy(s.KubeProxy)
	p.peers(d)
	p.printf("\n")
}

func (p *printer) tunnels(t detect.Tunnels) {
	if t.Err.Failed() {
		p.row("tunnels", "unknown (%s)", t.Err)
		return
	}
	if len(t.Devices) == 0 {
		p.row("tunnels", "none (no vxlan, geneve or ipip links in this network namespace)")
		return
	}
	for i, d := range t.Devices {
		name := ""
		if i == 0 {
			name = "tunnels"
		}
		desc := fmt.Sprintf("%s %s", d.Name, d.Kind)
		if d.VNI != 0 {
			desc += fmt.Sprintf(" vni %d", d.VNI)
		}
		if d.Port != 0 {
			desc += fmt.Sprintf(" port %d", d.Port)
		}
		desc += fmt.Sprintf(" mtu %d", d.MTU)
		if d.Underlay != nil {
			desc += fmt.Sprintf(" over %s (mtu %d)", d.Underlay.Name, d.Underlay.MTU)
		}
		p.row(name, "%s: %s", desc, featureLine(d.Features))
	}
}

// featureLine prints the tx offloads that decide tunnel throughput.
func featureLine(f detect.Features) string {
	if f.Err.Failed() {
		return "features unknown (" + f.Err.Error() + ")"
	}
	short := []struct{ name, label string }{
		{detect.FeatureTxChecksumGeneric, "tx-csum"},
		{detect.FeatureTSO, "tso"},
		{detect.FeatureGSO, "gso"},
		{detect.FeatureGRO, "gro"},
	}
	var parts []string
	for _, s := range short {
		if on, ok := f.Has(s.name); ok {
			parts = append(parts, s.label+" "+detect.OnOff(on))
		}
	}
	return strings.Join(parts, ", ")
}

func (p *printer) cpu(c detect.CPU) {
	if c.Err.Failed() {
		p.row("cpu", "unknown (%s)", c.Err)
		return
	}
	busiest := detect.CPUUsage{CPU: -1}
	for _, u := range c.PerCPU {
		if busiest.CPU < 0 || u.Softirq > busiest.Softirq {
			busiest = u
		}
	}
	p.row("cpu", "%d CPUs: softirq %.1f%% (busiest cpu%d %.1f%%), steal %.1f%%, idle %.1f%%",
		len(c.PerCPU), c.Total.Softirq*100, busiest.CPU, busiest.Softirq*100, c.Total.Steal*100, c.Total.Idle*100)
}

func (p *printer) conntrack(c detect.Conntrack) {
	switch {
	case c.Err.Failed():
		p.row("conntrack", "unknown (%s)", c.Err)
	case !c.Present:
		p.row("conntrack", "not in use in this network namespace")
	default:
		line := fmt.Sprintf("%d of %d entries (%.1f%%)", c.Count, c.Max, c.Usage()*100)
		if !c.StatErr.Failed() {
			line += fmt.Sprintf(", %d insert failures and %d drops in the window", c.Delta.InsertFailed, c.Delta.Drop+c.Delta.EarlyDrop)
		}
		p.row("conntrack", "%s", line)
	}
}

func (p *printer) kubeProxy(k detect.KubeProxy) {
	switch {
	case k.Err.Failed():
		p.row("kube-proxy", "unknown (%s)", k.Err)
	case !k.Running:
		p.row("kube-proxy", "not answering on its metrics port")
	default:
		line := "mode " + k.Mode
		if k.Version.Known() {
			line = k.Version.Git + ", " + line
		}
		if k.NATRules >= 0 {
			line += fmt.Sprintf(", %d nat rules", k.NATRules)
		}
		if k.SyncSeconds >= 0 {
			line += fmt.Sprintf(", %.3f s per sync", k.SyncSeconds)
		}
		if k.FullSyncs.Count > 0 && k.FullSyncSeconds >= 0 {
			line += fmt.Sprintf(", %.3f s per full sync", k.FullSyncSeconds)
		}
		p.row("kube-proxy", "%s", line)
	}
}

func (p *printer) findings(fs []rules.Finding) {
	if len(fs) == 0 {
		p.printf("%s\n", p.paint(ansiBold, "No findings: nothing on this node is known to cost network performance."))
		return
	}
	counts := map[rules.Severity]int{}
	for _, f := range fs {
		counts[f.Severity]++
	}
	var parts []string
	for _, sev := range []rules.Severity{rules.Critical, rules.Warning, rules.Info} {
		if counts[sev] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[sev], sev))
		}
	}
	p.printf("%s\n\n", p.paint(ansiBold, fmt.Sprintf("Findings: %s", strings.Join(parts, ", "))))
	for _, f := range fs {
		p.finding(f)
	}
}

func (p *printer) finding(f rules.Finding) {
	sev := p.paint(severityColor[f.Severity]+ansiBold, fmt.Sprintf("%-8s", strings.ToUpper(f.Severity.String())))
	p.printf("%s %s  %s\n", sev, p.paint(ansiBold, shell.Escape(f.Rule)), shell.Escape(f.Subject))
	p.printf("  %s\n", shell.Escape(f.Summary))
	p.wrapped("why", f.Explanation)
	if len(f.Evidence) > 0 {
		ev := make([]string, len(f.Evidence))
		for i, e := range f.Evidence {
			ev[i] = e.Name + "=" + e.Value
		}
		p.wrapped("evidence", strings.Join(ev, "  "))
	}
	impact := f.Impact.Summary
	if f.Impact.Source != "" {
		impact += " (" + f.Impact.Source + ")"
	}
	p.wrapped("impact", impact)
	if f.Fix.Command != "" {
		for i, line := range strings.Split(f.Fix.Command, "\n") {
			label := ""
			if i == 0 {
				label = "fix:"
			}
			p.printf("  %-9s %s\n", label, p.paint(ansiBold, shell.Escape(line)))
		}
	}
	switch {
	case f.Fix.Auto && f.Owner == nil:
		p.printf("  %-9s %s\n", "", p.paint(ansiDim, "`nodetune fix` can apply this, journaled and reversible"))
	case f.Fix.Manual != "":
		p.wrapped("note", f.Fix.Manual)
	}
	if len(f.References) > 0 {
		refs := make([]string, len(f.References))
		for i, r := range f.References {
			refs[i] = shell.Escape(r)
		}
		p.printf("  %-9s %s\n", "see:", strings.Join(refs, "\n            "))
	}
	p.printf("\n")
}

// wrapped prints text after a label, wrapped to the report's width.
func (p *printer) wrapped(label, text string) {
	if text == "" {
		return
	}
	indent := "            "
	width := p.opt.Width - len(indent)
	line := ""
	first := true
	flush := func() {
		prefix := indent
		if first {
			prefix = fmt.Sprintf("  %-9s ", label+":")
			first = false
		}
		p.printf("%s%s\n", prefix, line)
		line = ""
	}
	for _, word := range strings.Fields(shell.Escape(text)) {
		if line != "" && len(line)+1+len(word) > width {
			flush()
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		flush()
	}
}

func (p *printer) unchecked(us []rules.Unchecked) {
	if len(us) == 0 {
		return
	}
	p.printf("\n%s\n", p.paint(ansiBold, "Could not check:"))
	for _, u := range us {
		subject := ""
		if u.Subject != "" {
			subject = " (" + u.Subject + ")"
		}
		p.printf("  %s\n", shell.Escape(fmt.Sprintf("%s%s: %s", u.Rule, subject, u.Reason)))
	}
}
