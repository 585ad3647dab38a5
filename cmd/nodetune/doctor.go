package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/peerstate"
	"github.com/nodetune/nodetune/report"
	"github.com/nodetune/nodetune/rules"
)

func init() { subcommands = append(subcommands, newDoctorCmd) }

// ruleFlags binds the rule thresholds users may tune, and checks them
// before the command runs.
func ruleFlags(cmd *cobra.Command, c *rules.Config) {
	fs := cmd.Flags()
	fs.Float64Var(&c.ConntrackWarn, "conntrack.warn", c.ConntrackWarn, "conntrack usage ratio that is a warning")
	fs.Float64Var(&c.ConntrackCritical, "conntrack.critical", c.ConntrackCritical, "conntrack usage ratio that is critical")
	fs.Float64Var(&c.StealWarn, "steal.warn", c.StealWarn, "CPU steal ratio that is a warning")
	fs.Float64Var(&c.StealCritical, "steal.critical", c.StealCritical, "CPU steal ratio that is critical")
	fs.Float64Var(&c.SoftirqBusy, "softirq.busy", c.SoftirqBusy, "softirq ratio at which one CPU counts as saturated")
	fs.Int64Var(&c.KubeProxyNATRules, "kube-proxy.nat-rules", c.KubeProxyNATRules, "kube-proxy nat rules past which iptables mode is judged not to scale")
	fs.Float64Var(&c.KubeProxySyncSeconds, "kube-proxy.sync-seconds", c.KubeProxySyncSeconds, "mean kube-proxy rule sync time past which iptables mode is judged not to scale")
	cmd.PreRunE = func(*cobra.Command, []string) error { return c.Validate() }
}

func newDoctorCmd(g *globals) *cobra.Command {
	cfg := rules.DefaultConfig()
	var output, stateDir string
	var window time.Duration
	var kf kubeFlags
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Report what on this node costs pod network performance, and the fix",
		Long: "doctor reads this node (or the network namespace it runs in) once, over a short window, and reports\n" +
			"each cause of lost network performance with its evidence, its cost and the exact fix. It never changes\n" +
			"the host.\n\n" +
			"Exit status: 0 no finding of warning or worse, 1 the worst is a warning, 2 the worst is critical,\n" +
			"3 bad usage, 4 nodetune could not run.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("-o: want text or json, got %q", output)
			}
			if err := checkWindow("--window", window); err != nil {
				return err
			}
			g.peerFile = peerstate.Path(stateDir)
			s, err := g.snapshot(cmd.Context(), window)
			if err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			addDoctorReports(cmd.Context(), kf, s) // doctor_events.go
			res := rules.Evaluate(s, cfg)
			doc := report.Build(version, s, res)
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				err = enc.Encode(doc)
			} else {
				err = report.WriteText(out, doc, report.TextOptions{Color: colorful(out)})
			}
			if err != nil {
				return &exitError{code: exitFailure, err: fmt.Errorf("writing the report: %w", err)}
			}
			if code := verdict(res.Findings); code != exitOK {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().DurationVar(&window, "window", time.Second, "how long to measure rates (softirq, steal, drops, checksum errors)")
	cmd.Flags().StringVar(&stateDir, "state-dir", defaultStateDir, "nodetune's state directory, where serve and bench --peer keep the last peer measurements doctor shows")
	ruleFlags(cmd, &cfg)
	kf.registerDoctor(cmd.Flags())
	return cmd
}

// verdict is doctor's exit code for a set of findings.
func verdict(fs []rules.Finding) int {
	worst, ok := rules.Worst(fs)
	switch {
	case !ok || worst < rules.Warning:
		return exitOK
	case worst == rules.Warning:
		return exitWarning
	}
	return exitCritical
}

// colorful reports whether w is a terminal that wants colour.
func colorful(w any) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// snapshot opens the host and takes one snapshot over window.
func (g *globals) snapshot(ctx context.Context, window time.Duration) (*detect.Snapshot, error) {
	p, closeHost, err := g.prober()
	if err != nil {
		return nil, err
	}
	defer closeHost()
	return p.Snapshot(ctx, window)
}
