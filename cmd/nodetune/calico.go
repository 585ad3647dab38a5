package main

// Cooperation with Calico's Felix (--calico.cooperate): where Felix keeps a
// tunnel's tx checksum offload off and the evidence says offload is safe,
// nodetune writes this node's FelixConfiguration (node.<name>) so that
// Felix leaves the device alone, waits for Felix to restart with it, turns
// offload on once, and checks that it stays on; if Felix switches it off
// again, nodetune rolls the override back and says so.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/kube"
	"github.com/nodetune/nodetune/probes"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// Timings of the cooperation, from what Felix was measured to do: it
// reverts an ethtool change within its 10 s reconcile period, and was
// ready again 3.2-3.5 s after node.<name> was written.
const (
	// felixPeriod is Felix's reconcile period.
	felixPeriod = 10 * time.Second
	// felixStaysOn is how long offload must stay on: two reconcile
	// periods and a margin.
	felixStaysOn = 2*felixPeriod + 5*time.Second
	// felixRestartTimeout bounds the wait for Felix to restart.
	felixRestartTimeout = 60 * time.Second
	// felixUnseenSettle is the wait where no Felix process is visible
	// under --path.procfs, so its restart cannot be seen: long
	// enough for the measured restart, and what follows checks the
	// result anyway.
	felixUnseenSettle = 15 * time.Second
)

// calicoFlags are the options of the Calico cooperation.
type calicoFlags struct {
	cooperate  bool
	kubeconfig string
	nodeName   string
}

func (c *calicoFlags) register(fs *pflag.FlagSet, cooperate bool) {
	if cooperate {
		fs.BoolVar(&c.cooperate, "calico.cooperate", false, "where Calico's Felix keeps tunnel tx checksum offload off and the evidence says it is safe, write this node's FelixConfiguration (node.<name>, journaled) so that Felix leaves it alone, then turn offload on once and check that it stays on")
	}
	if fs.Lookup("kubeconfig") == nil {
		fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig file of the cluster (for the FelixConfiguration); empty uses the in-cluster configuration")
	}
	if fs.Lookup("kube.node-name") == nil {
		fs.StringVar(&c.nodeName, "kube.node-name", "", "the node's name, as Calico knows it (default $NODE_NAME, else what the node shows)")
	}
}

// felixAPI is the connection to the API server's FelixConfigurations.
type felixAPI struct {
	configs *kube.FelixConfigs
	kind    *tune.FelixKind
}

// openFelixAPI connects to the API server and finds its
// FelixConfigurations: projectcalico.org/v3, else the CRDs, with a warning.
func openFelixAPI(ctx context.Context, kubeconfig string) (*felixAPI, error) {
	cfg, err := kube.RESTConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("connecting to the API server for the FelixConfiguration: %w", err)
	}
	c, err := kube.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the API server for the FelixConfiguration: %w", err)
	}
	fcs, err := kube.DiscoverFelixConfigs(ctx, c)
	if err != nil {
		return nil, err
	}
	return &felixAPI{configs: fcs, kind: tune.NewFelixKind(kube.FelixSpecs{F: fcs})}, nil
}

// use makes every snapshot g takes read this node's FelixConfigurations
// through a, named by c's node name ($NODE_NAME, else what the node shows,
// when it is empty).
func (a *felixAPI) use(g *globals, c calicoFlags) {
	g.felix = func(ctx context.Context, node string) detect.FelixObjects {
		return kube.ReadFelixObjects(ctx, a.configs, node)
	}
	g.felixNode = c.nodeName
}

// journalHasFelix reports whether the journal holds open Felix override
// entries, which only a Tuner with the Felix kind can roll back.
func journalHasFelix(tu *tune.Tuner) bool {
	return slices.ContainsFunc(tu.Entries(), func(e tune.Entry) bool { return e.Key.Kind == rules.ChangeFelixConfiguration })
}

// felixPIDs are the Felix processes now; nil with an error when they
// cannot be seen.
func felixPIDs(procfs string) ([]int, error) {
	pids, err := probes.FelixProcesses(procfs)
	if err == nil && len(pids) == 0 {
		err = errors.New("no Felix process shows under --path.procfs (the host's /proc is needed to see it)")
	}
	return pids, err
}

// waitFelixRestart waits, up to felixRestartTimeout, until none of the
// Felix processes of before runs and another does: Felix restarted, and
// read its new configuration. Where no Felix process was visible before,
// it waits felixUnseenSettle and says so.
func waitFelixRestart(ctx context.Context, w io.Writer, procfs string, before []int, seenErr error) error {
	if seenErr != nil {
		fmt.Fprintf(w, "Felix's restart cannot be seen (%v): waiting %s, then checking that offload stays on.\n", seenErr, felixUnseenSettle)
		return sleep(ctx, felixUnseenSettle)
	}
	fmt.Fprintf(w, "Waiting for Felix (PID %v) to restart with the override (at most %s)...\n", before, felixRestartTimeout)
	ctx, cancel := context.WithTimeout(ctx, felixRestartTimeout)
	defer cancel()
	for {
		now, err := probes.FelixProcesses(procfs)
		if err == nil && len(now) > 0 && !slices.ContainsFunc(now, func(p int) bool { return slices.Contains(before, p) }) {
			fmt.Fprintf(w, "Felix restarted (PID %v).\n", now)
			return nil
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return fmt.Errorf("Felix did not restart within %s of the override: %w", felixRestartTimeout, err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// offloadKey is tx checksum offload of dev.
func offloadKey(dev string) tune.Key {
	return tune.Key{Kind: rules.ChangeFeature, Target: dev, Setting: detect.FeatureTxChecksumGeneric}
}

// staysOn reads k every second for d and returns the first value that is
// not on, or "" when it stayed on.
func staysOn(ctx context.Context, sys tune.System, k tune.Key, d time.Duration) (string, error) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		v, err := sys.Read(ctx, k)
		if err != nil {
			return "", err
		}
		if v.Effective != "on" {
			return v.Effective, nil
		}
		if err := sleep(ctx, time.Second); err != nil {
			return "", err
		}
	}
	return "", nil
}

// cooperation is what fix did with Felix after the override.
type cooperation struct {
	outcomes []tune.Outcome
	// conflict is set when Felix switched offload off again and the
	// override was rolled back.
	conflict bool
	// done is set when offload went on and stayed on.
	done bool
	// verifyCode is the exit status the measurement of the offload change
	// calls for (--verify-peer).
	verifyCode int
}

// cooperateFelix finishes what the override began: it waits for Felix to
// restart with it, plans again (the owner gate lets tx offload on now
// that the override is journaled and in place), turns offload on, and
// checks that it stays on across two of Felix's reconcile periods. If
// Felix switches it off again, it rolls back the override and the offload
// change and reports remediation-conflict.
func cooperateFelix(ctx context.Context, w io.Writer, g *globals, f fixFlags, cfg rules.Config, sys tune.System, tu *tune.Tuner,
	first []tune.Outcome, pids []int, pidErr error) (cooperation, error) {
	var co cooperation
	i := slices.IndexFunc(first, func(o tune.Outcome) bool {
		return o.Change.Kind == rules.ChangeFelixConfiguration && (o.Result == tune.Verified || o.Result == tune.Unchanged)
	})
	if i < 0 {
		return co, nil
	}
	if first[i].Result == tune.Verified {
		if err := waitFelixRestart(ctx, w, g.paths.ProcFS, pids, pidErr); err != nil {
			return co, err
		}
	}
	s, err := g.snapshot(ctx, f.window)
	if err != nil {
		return co, err
	}
	findings := rules.Evaluate(s, cfg).Findings
	plan := tu.Plan(s, findings, tune.PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}, Exclude: f.exclude})
	var dev string
	for _, c := range plan.Approved() {
		if c.Kind == rules.ChangeFeature && c.Setting == detect.FeatureTxChecksumGeneric {
			dev = c.Target
		}
	}
	if dev == "" {
		fmt.Fprintln(w, "\nWith the override in place, no offload change was planned:")
		printPlan(w, plan, nil)
		return co, nil
	}
	apply := func(ctx context.Context, p tune.Plan) ([]tune.Outcome, []tune.Verification, error) {
		return applyFix(ctx, g, f.verify, tu, p)
	}
	var on bool
	if co.outcomes, co.verifyCode, on, err = offloadOnce(ctx, w, apply, f.verify.peer, plan, dev); err != nil || !on {
		return co, err
	}
	fmt.Fprintf(w, "Checking that offload stays on for %s (two of Felix's %s reconcile periods)...\n", felixStaysOn, felixPeriod)
	got, err := staysOn(ctx, sys, offloadKey(dev), felixStaysOn)
	if err != nil {
		return co, fmt.Errorf("checking that offload stays on %s: %w", dev, err)
	}
	if got == "" {
		co.done = true
		fmt.Fprintf(w, "Offload stayed on %s.\n", dev)
		return co, nil
	}
	co.conflict = true
	keys := cooperationKeys(first[i].Change.Key, dev)
	fmt.Fprintf(w, "\n%s: %s switched tx checksum offload %s again on %s despite the override in %s; rolling the override back:\n",
		rules.RemediationConflict, detect.OwnerFelix, got, dev, first[i].Change.Target)
	back := tu.RollbackKeys(ctx, keys)
	printOutcomes(w, back)
	co.outcomes = append(co.outcomes, back...)
	return co, nil
}

// cooperationKeys are the settings a cooperation with Felix changed: the
// override, and offload on dev with its segmentation follow-ups; what is
// rolled back when Felix fights it.
func cooperationKeys(override tune.Key, dev string) []tune.Key {
	keys := []tune.Key{override, offloadKey(dev)}
	for _, feat := range tune.SegmentationFeatures {
		keys = append(keys, tune.Key{Kind: rules.ChangeFeature, Target: dev, Setting: feat})
	}
	return keys
}

// fixApply applies a plan as fix does: measured with --verify-peer.
type fixApply func(context.Context, tune.Plan) ([]tune.Outcome, []tune.Verification, error)

// offloadOnce turns offload on dev on once through apply, so that it is
// measured like any change made to raise throughput, prints what became of
// it, and reports the exit status the measurement calls for and whether
// offload is on, to be checked against Felix: not when it was not made,
// nor when it measured slower and was undone.
func offloadOnce(ctx context.Context, w io.Writer, apply fixApply, peer string, plan tune.Plan, dev string) ([]tune.Outcome, int, bool, error) {
	fmt.Fprintf(w, "\nTurning tx checksum offload on %s once, now that Felix leaves it alone:\n", dev)
	out, vs, err := apply(ctx, plan)
	if err != nil {
		return nil, exitOK, false, err
	}
	printOutcomes(w, out)
	code := exitOK
	if peer != "" {
		code = printVerifications(w, peer, vs)
	}
	key := offloadKey(dev)
	made := slices.ContainsFunc(out, func(o tune.Outcome) bool {
		return o.Change.Key == key && o.Action == tune.ActionApply && (o.Result == tune.Verified || o.Result == tune.Unchanged)
	})
	undone := slices.ContainsFunc(vs, func(v tune.Verification) bool { return v.Change.Key == key && v.Verdict == tune.VerdictUndone })
	return out, code, made && !undone, nil
}

// withoutOwnerRefusals leaves out the changes and outcomes refused
// because Felix owned the setting: with the override in place, the
// cooperation made them.
func withoutOwnerRefusals[T tune.Change | tune.Outcome](xs []T) []T {
	var out []T
	for _, x := range xs {
		var c tune.Change
		switch v := any(x).(type) {
		case tune.Change:
			c = v
		case tune.Outcome:
			c = v.Change
		}
		if c.Reason == tune.ReasonOwner && c.Owner != nil && c.Owner.Name == detect.OwnerFelix {
			continue
		}
		out = append(out, x)
	}
	return out
}

// printFelixPlan shows, for the FelixConfiguration change of p, the
// exact change to the object's spec and the kubectl command that makes it
// by hand, with the install type.
func printFelixPlan(w io.Writer, p tune.Plan, s *detect.Snapshot) {
	for _, c := range p.Approved() {
		if c.Kind != rules.ChangeFelixConfiguration {
			continue
		}
		install, _ := s.Ownership.Calico.Install()
		plan, err := kube.OverridePlanFrom(s.Felix, c.To, install)
		if err != nil {
			fmt.Fprintf(w, "\n%s: %s\n", c.Target, esc(err.Error()))
			continue
		}
		fmt.Fprintf(w, "\nThe change to %s, before offload goes on (install: %s):\n", c.Target, orUnknown(install))
		for _, line := range splitLines(plan.Diff()) {
			fmt.Fprintf(w, "    %s\n", esc(line))
		}
		fmt.Fprintf(w, "    by hand: %s\n", plan.Command())
		for _, n := range plan.Notes() {
			fmt.Fprintf(w, "    note:    %s\n", esc(n))
		}
	}
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

// withFelixPlan rewrites, where the FelixConfigurations were read, the
// fix of each finding about a Felix-owned device's offload with the exact
// change to node.<name>: the kubectl command that makes it as safely as
// nodetune does (a create, or a patch conditional on the resourceVersion
// read) and the diff of the spec, with the install type, instead of the
// generic command worked out from the node alone.
func withFelixPlan(s *detect.Snapshot, findings []rules.Finding) {
	if !s.Felix.Read || s.Felix.Err.Failed() {
		return
	}
	spec, err := s.Felix.NodeOverrideSpec(detect.FelixOverrideKey, "false")
	if err != nil {
		return // the finding's own text stands; tune refuses the change and says why
	}
	install, _ := s.Ownership.Calico.Install()
	plan, err := kube.OverridePlanFrom(s.Felix, spec, install)
	if err != nil {
		return
	}
	for i, f := range findings {
		if f.Owner == nil || f.Owner.Name != detect.OwnerFelix || (f.Rule != rules.TunnelTxChecksumOff && f.Rule != rules.CNIOwnsOffload) {
			continue
		}
		lines := []string{plan.Command()}
		if f.Rule == rules.TunnelTxChecksumOff {
			lines = append(lines, f.Fix.Command) // then offload on, once Felix restarted
		}
		manual := "the change to " + plan.Name + " (install: " + orUnknown(install) + "): " + oneLine(plan.Diff()) + ". " + strings.Join(plan.Notes(), ". ")
		if !plan.Changed {
			manual = plan.Name + " already carries " + detect.FelixOverride + "; " + strings.Join(plan.Notes(), ". ")
			lines = lines[1:]
		}
		findings[i].Fix.Command = strings.Join(lines, "\n")
		if f.Fix.Manual != "" {
			manual = f.Fix.Manual + ". " + manual
		}
		findings[i].Fix.Manual = manual
	}
}

// oneLine joins the lines of a diff with "; ", for a finding's one-paragraph
// text.
func oneLine(diff string) string {
	var out []string
	for _, l := range splitLines(diff) {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}
