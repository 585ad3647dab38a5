package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/safchain/ethtool"
	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"
	"golang.org/x/term"

	"github.com/nodetune/nodetune/internal/shell"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

func init() { subcommands = append(subcommands, newFixCmd, newRollbackCmd) }

// Exit codes of fix and rollback, besides exitOK, exitUsage and
// exitFailure.
const (
	// exitIncomplete: some changes were refused, declined at the prompt, or
	// (rollback) left alone because someone else changed them; nothing
	// failed.
	exitIncomplete = 1
	// exitChangeFailed: a change failed or was reverted.
	exitChangeFailed = 2
)

// defaultStateDir is where fix, rollback and serve keep the journal.
const defaultStateDir = "/var/lib/nodetune"

// tuneSystem opens the host for writing, through the real ethtool socket,
// with a netlink handle that identifies the devices it changes.
func (g *globals) tuneSystem() (*tune.Host, func(), error) {
	et, err := ethtool.NewEthtool()
	if err != nil {
		return nil, nil, fmt.Errorf("opening the ethtool socket: %w", err)
	}
	nl, err := netlink.NewHandle()
	if err != nil {
		et.Close()
		return nil, nil, fmt.Errorf("opening a netlink handle: %w", err)
	}
	h := tune.NewHost(g.paths.ProcFS, g.paths.SysFS, et)
	h.RootFS = g.paths.RootFS // for modules.builtin
	h.Links = nl
	return h, func() { nl.Close(); et.Close() }, nil
}

type fixFlags struct {
	yes, dryRun, force bool
	rules              []string
	exclude            []string
	release            []string
	stateDir           string
	window             time.Duration
	calico             calicoFlags
	verify             fixVerifyFlags
}

func newFixCmd(g *globals) *cobra.Command {
	cfg := rules.DefaultConfig()
	var f fixFlags
	cmd := &cobra.Command{
		Use:   "fix",
		Short: "Plan, apply and verify the safe fixes for what doctor finds, journaled for rollback",
		Long: "fix reads the node as doctor does, plans a change for every finding nodetune may fix by itself,\n" +
			"prints the plan (what, from, to, why) and applies it with --yes or after you confirm on a terminal.\n" +
			"Before each write the original value is recorded durably in the journal under --state-dir; after\n" +
			"it the value is read back, and a value the kernel did not take is reverted. A change to a setting\n" +
			"that another agent owns (Calico Felix, kube-proxy) is refused unless --force is given; tx checksum\n" +
			"offload is never turned on where the kernel may lack the NAT checksum fix, or bad UDP checksums\n" +
			"arrive that are not traced to non-tunnel ports, or were counted since boot without a long quiet\n" +
			"spell since. `nodetune rollback` undoes what fix did.\n\n" +
			"Exit status: 0 every planned change was applied and verified (or nothing needed fixing),\n" +
			"1 some changes were refused, not confirmed or (--dry-run) only planned, or a value of an\n" +
			"interrupted run was left alone, and nothing failed, 2 a change (or the recovery of an\n" +
			"interrupted one) failed or was reverted, 3 bad usage, 4 nodetune could not run or stopped\n" +
			"(probes; the journal corrupt, foreign, locked or not writable), 130 interrupted (Ctrl-C).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkRuleIDs(append(slices.Clone(f.rules), f.exclude...)); err != nil {
				return err
			}
			if err := checkRelease(f.release); err != nil {
				return err
			}
			if err := checkWindow("--window", f.window); err != nil {
				return err
			}
			if err := checkStateDir(f.stateDir, !f.dryRun); err != nil {
				return err
			}
			if err := f.verify.check(); err != nil {
				return err
			}
			return runFix(cmd, g, cfg, f)
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&f.yes, "yes", "y", false, "apply the plan without asking")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the plan and change nothing")
	fs.BoolVar(&f.force, "force", false, "also change settings that another agent (Felix, kube-proxy) owns")
	fs.StringArrayVar(&f.rules, "rule", nil, "fix only findings of this rule ID (repeatable)")
	fs.StringArrayVar(&f.exclude, "exclude-rule", nil, "never fix findings of this rule ID (repeatable)")
	fs.StringArrayVar(&f.release, "release", nil, "lift the hold that `nodetune rollback` put on the changes of this rule ID, or all (repeatable); the released changes are planned again")
	fs.StringVar(&f.stateDir, "state-dir", defaultStateDir, "directory of the journal that rollback reads")
	fs.DurationVar(&f.window, "window", time.Second, "how long to measure rates before planning")
	f.calico.register(fs, true)
	f.verify.register(fs)
	ruleFlags(cmd, &cfg)
	return cmd
}

// checkRelease rejects --release values that are neither all nor a rule
// nodetune fixes by itself.
func checkRelease(ids []string) error {
	var rest []string
	for _, id := range ids {
		if id != "all" {
			rest = append(rest, id)
		}
	}
	if err := checkRuleIDs(rest); err != nil {
		return fmt.Errorf("--release: %w (or all)", err)
	}
	return nil
}

// checkRuleIDs rejects --rule values that name no auto-fixable rule.
func checkRuleIDs(ids []string) error {
	var auto []string
	for _, r := range rules.Catalog() {
		if r.Auto {
			auto = append(auto, r.ID)
		}
	}
	for _, id := range ids {
		if !slices.Contains(auto, id) {
			return fmt.Errorf("--rule %q: not a rule nodetune fixes by itself; those are %s", id, strings.Join(auto, ", "))
		}
	}
	return nil
}

func runFix(cmd *cobra.Command, g *globals, cfg rules.Config, f fixFlags) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	sys, closeSys, err := g.tuneSystem()
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	defer closeSys()
	var felix *felixAPI
	if f.calico.cooperate {
		if felix, err = openFelixAPI(ctx, f.calico.kubeconfig); err != nil {
			return &exitError{code: exitFailure, err: fmt.Errorf("--calico.cooperate: %w", err)}
		}
		sys.More = append(sys.More, felix.kind)
		felix.use(g, f.calico)
		if felix.configs.Warning != "" {
			g.log.Warn(felix.configs.Warning)
		}
	}

	// The journal's history shapes the plan. Finish whatever an interrupted
	// run left behind before looking at the node, so the plan starts from a
	// settled state; a dry run only reads the journal, without its lock.
	var tu *tune.Tuner
	var reconciled []tune.Outcome
	if tune.JournalExists(f.stateDir) {
		open := tune.Open
		if f.dryRun {
			open = tune.OpenReadOnly
		}
		if tu, err = open(f.stateDir, sys); err != nil {
			return &exitError{code: exitFailure, err: err}
		}
		defer tu.Close()
		if felix == nil && journalHasFelix(tu) {
			// Its Felix entries are reconciled and rolled back by the kind.
			if felix, err = openFelixAPI(ctx, f.calico.kubeconfig); err != nil {
				fmt.Fprintf(out, "The journal holds FelixConfiguration changes, and the API server cannot be reached to check them: %v\n", err)
			} else {
				sys.More = append(sys.More, felix.kind)
			}
		}
	}
	if tu != nil && !f.dryRun {
		if reconciled = tu.Reconcile(ctx); len(reconciled) > 0 {
			fmt.Fprintln(out, "Recovered from an interrupted run:")
			printOutcomes(out, reconciled)
			fmt.Fprintln(out)
		}
	}

	s, err := g.snapshot(ctx, f.window)
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	findings := rules.Evaluate(s, cfg).Findings
	opts := tune.PlanOptions{Rules: f.rules, Exclude: f.exclude, Force: f.force, Release: f.release}
	plan := tune.KindsOf(sys).Propose(s, findings, opts)
	if tu != nil {
		plan = tu.Plan(s, findings, opts)
	}
	// The user's word lifts the holds of an earlier rollback (the plan
	// above already left them out), once the plan is confirmed, or at once
	// when there is nothing to apply: a plan declined changes nothing.
	release := func() error {
		if tu == nil || f.dryRun || len(f.release) == 0 {
			return nil
		}
		released, err := tu.Release(f.release)
		for _, h := range released {
			fmt.Fprintf(out, "Released the hold that rollback put on %s [%s] at %s.\n", h.Key, esc(h.Rule), h.At.Format(time.RFC3339))
		}
		if err != nil {
			return &exitError{code: exitFailure, err: err}
		}
		return nil
	}
	held := heldBack(findings, f.rules)
	printPlan(out, plan, held)
	if f.calico.cooperate {
		printFelixPlan(out, plan, s)
	}
	approved := len(plan.Approved())
	partial := outcomeCode(reconciled)
	if len(plan.Refusals()) > 0 || len(held) > 0 {
		partial = max(partial, exitIncomplete)
	}
	switch {
	case approved == 0:
		if err := release(); err != nil {
			return err
		}
		return exitCode(partial)
	case f.dryRun:
		// Nothing planned was applied: the same status as a plan not
		// confirmed, so that 0 always means the node needs nothing.
		fmt.Fprintf(out, "\nDry run: %d change(s) not applied.\n", approved)
		return exitCode(max(partial, exitIncomplete))
	case !f.yes:
		ok, err := confirm(ctx, cmd.InOrStdin(), out, approved, "Apply")
		if err != nil {
			return &exitError{code: exitIncomplete, err: err}
		}
		if !ok {
			fmt.Fprintln(out, "Nothing was changed.")
			return exitCode(exitIncomplete)
		}
	}
	if err := release(); err != nil {
		return err
	}
	if tu == nil {
		if tu, err = tune.Open(f.stateDir, sys); err != nil {
			return &exitError{code: exitFailure, err: err}
		}
		defer tu.Close()
		// Only a plan made against the journal applies. The journal was
		// just created, so this plan is the one shown, unless another
		// nodetune made changes in between, which it then takes into
		// account.
		plan = tu.Plan(s, findings, opts)
	}
	var pids []int
	var pidErr error
	if f.calico.cooperate {
		pids, pidErr = felixPIDs(g.paths.ProcFS) // before the override, to see Felix restart after it
	}
	outcomes, verified, err := applyFix(ctx, g, f.verify, tu, plan)
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	fmt.Fprintln(out, "\nResult:")
	printOutcomes(out, outcomes)
	code := max(partial, outcomeCode(outcomes))
	verifyCode := exitOK
	if f.verify.peer != "" {
		verifyCode = printVerifications(out, f.verify.peer, verified)
		code = max(code, verifyCode)
	}
	if f.calico.cooperate {
		co, err := cooperateFelix(ctx, out, g, f, cfg, sys, tu, outcomes, pids, pidErr)
		verifyCode = max(verifyCode, co.verifyCode)
		switch {
		case err != nil:
			fmt.Fprintf(out, "\n%s\n", esc(err.Error()))
			code = max(code, exitChangeFailed)
		case co.conflict:
			code = max(code, exitChangeFailed, outcomeCode(co.outcomes))
		case co.done:
			// The offload change the first plan refused as Felix's is made.
			code = max(outcomeCode(reconciled), outcomeCode(co.outcomes), outcomeCode(withoutOwnerRefusals(outcomes)))
			if len(held) > 0 || len(withoutOwnerRefusals(plan.Refusals())) > 0 {
				code = max(code, exitIncomplete)
			}
		}
		code = max(code, verifyCode)
	}
	if code == exitOK {
		fmt.Fprintf(out, "\nEvery change was applied and verified. Undo with: nodetune rollback --state-dir %s\n", f.stateDir)
	}
	return exitCode(code)
}

// outcomeCode is the exit status that outcomes of fix, rollback or
// reconcile call for, the worst one winning: exitFailure when the journal
// could not be written (nodetune stopped changing the node),
// exitChangeFailed when a change failed or was reverted, exitIncomplete
// when one was refused or left alone as someone else's.
func outcomeCode(outcomes []tune.Outcome) int {
	code := exitOK
	for _, o := range outcomes {
		switch {
		case errors.Is(o.Err, tune.ErrJournalWrite):
			code = max(code, exitFailure)
		case o.Result == tune.Failed || o.Result == tune.Reverted:
			code = max(code, exitChangeFailed)
		case o.Result == tune.Refused || o.Result == tune.Conflict:
			code = max(code, exitIncomplete)
		}
	}
	return code
}

// exitCode is nil for exitOK, and an exitError without a message otherwise.
func exitCode(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code}
}

// confirm asks on a terminal whether to do verb to n changes ("Apply",
// "Restore"). Without a terminal there is nobody to ask, and the answer is
// an error. Ctrl-C at the prompt ends it with ctx's error: the read of the
// terminal would otherwise go on blocking after the signal.
func confirm(ctx context.Context, in io.Reader, out io.Writer, n int, verb string) (bool, error) {
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		done := map[string]string{"Apply": "applied", "Restore": "restored"}[verb]
		return false, fmt.Errorf("not %s: standard input is not a terminal to confirm on; run with --yes to %s, or --dry-run", done, strings.ToLower(verb))
	}
	if n == 1 {
		fmt.Fprintf(out, "\n%s this change? [y/N] ", verb)
	} else {
		fmt.Fprintf(out, "\n%s these %d changes? [y/N] ", verb, n)
	}
	type reply struct {
		line string
		err  error
	}
	replies := make(chan reply, 1)
	go func() {
		line, err := bufio.NewReader(in).ReadString('\n')
		replies <- reply{line, err}
	}()
	var r reply
	select {
	case r = <-replies:
	case <-ctx.Done():
		fmt.Fprintln(out)
		return false, ctx.Err()
	}
	if r.err != nil && r.line == "" {
		return false, nil
	}
	answer := strings.ToLower(strings.TrimSpace(r.line))
	return answer == "y" || answer == "yes", nil
}

// heldBack returns the findings (of the selected rules) whose fix names
// changes that the rule itself judged unsafe to make automatically, such as
// offload while bad UDP checksums arrive.
func heldBack(findings []rules.Finding, only []string) []rules.Finding {
	var out []rules.Finding
	for _, f := range findings {
		if !f.Fix.Auto && len(f.Fix.Changes) > 0 && (len(only) == 0 || slices.Contains(only, f.Rule)) {
			out = append(out, f)
		}
	}
	return out
}

// printPlan writes the plan for a person: each change with what, from, to
// and why, then the refused ones with the reason, then the findings held
// back from automatic fixing.
func printPlan(w io.Writer, p tune.Plan, held []rules.Finding) {
	approved, refused := p.Approved(), p.Refusals()
	defer func() {
		for _, f := range held {
			fmt.Fprintf(w, "\nnot fixed automatically: %s [%s]\n", esc(f.Summary), esc(f.Rule))
			fmt.Fprintf(w, "    why:     %s\n", esc(f.Fix.Manual))
		}
	}()
	if len(p.Changes) == 0 {
		fmt.Fprintln(w, "Nothing to fix: no finding that nodetune fixes by itself.")
		return
	}
	fmt.Fprintf(w, "Plan: %d change(s), %d refused.\n", len(approved), len(refused))
	for i, c := range approved {
		fmt.Fprintf(w, "\n%2d. %s: %s -> %s\n", i+1, c.Key, esc(orUnknown(c.From)), esc(c.To))
		fmt.Fprintf(w, "    why:     %s [%s]\n", esc(c.Why), esc(c.Rule))
		fmt.Fprintf(w, "    command: %s\n", c.Command())
		for _, n := range c.Notes {
			fmt.Fprintf(w, "    note:    %s\n", esc(n))
		}
		if c.Owner != nil {
			fmt.Fprintf(w, "    owner:   %s (changed anyway: --force); durable fix: %s\n", esc(c.Owner.Name), esc(c.Owner.DurableFix))
		}
	}
	for _, c := range refused {
		fmt.Fprintf(w, "\nrefused: %s: %s -> %s\n", c.Key, esc(orUnknown(c.From)), esc(c.To))
		fmt.Fprintf(w, "    why:     %s [%s]\n", esc(c.Why), esc(c.Rule))
		fmt.Fprintf(w, "    refused: %s\n", esc(c.Refused))
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// printOutcomes writes one line per outcome.
func printOutcomes(w io.Writer, outcomes []tune.Outcome) {
	for _, o := range outcomes {
		fmt.Fprintf(w, "  %s\n", esc(o.String()))
	}
}

// esc is text for the terminal: what comes from the node (device names,
// the kernel's and tools' error messages) may hold control characters,
// which are shown escaped, never raw.
var esc = shell.Escape
