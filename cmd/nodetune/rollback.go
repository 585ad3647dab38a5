package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/nodetune/nodetune/tune"
)

func newRollbackCmd(g *globals) *cobra.Command {
	var stateDir string
	var dryRun, hold, yes bool
	var calico calicoFlags
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Restore every value nodetune changed and still owns, newest first",
		Long: "rollback reads the journal under --state-dir and restores, newest first, every setting nodetune\n" +
			"changed and still finds at the value it set. A setting someone else has changed since is reported\n" +
			"and left alone; a change whose write never happened (the process died first) is simply closed.\n" +
			"Kernel modules nodetune loaded stay loaded (unloading could break kube-proxy); their entries are closed.\n" +
			"An entry whose device was deleted (or deleted and created again under its name) or whose network\n" +
			"namespace no longer exists is closed as gone; a renamed device is followed. What rollback undid is\n" +
			"held: fix and serve --mode remediate do not make it again until nodetune fix --release RULE|all\n" +
			"(--hold=false: no hold).\n" +
			"--dry-run prints the ethtool, sysctl and other commands that would restore the values by hand; it\n" +
			"reads the journal without locking or writing it, so it also works while nodetune serve runs.\n" +
			"Like fix, rollback restores with --yes or after you confirm on a terminal; without either it\n" +
			"changes nothing.\n\n" +
			"Exit status: 0 everything nodetune owned is back (or there was nothing to do), 1 some values were\n" +
			"left alone because someone else changed them, the rollback was not confirmed, or (--dry-run)\n" +
			"restores are pending, 2 a restore failed, 3 bad usage, 4 nodetune could not run or stopped (the\n" +
			"journal corrupt, foreign, locked or not writable), 130 interrupted (Ctrl-C).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if err := checkStateDir(stateDir, false); err != nil {
				return err
			}
			if !tune.JournalExists(stateDir) {
				fmt.Fprintf(out, "Nothing to roll back: there is no journal in %s.\n", stateDir)
				return nil
			}
			sys, closeSys, err := g.tuneSystem()
			if err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			defer closeSys()
			open := tune.Open
			if dryRun {
				open = tune.OpenReadOnly // no lock, no write: works while serve runs
			}
			tu, err := open(stateDir, sys)
			if err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			defer tu.Close()
			if journalHasFelix(tu) {
				// Only the Felix kind can read and restore those entries.
				api, err := openFelixAPI(cmd.Context(), calico.kubeconfig)
				if err != nil {
					fmt.Fprintf(out, "The journal holds changes to a FelixConfiguration, and nodetune cannot reach the API server to restore them "+
						"(they stay open; run rollback again with --kubeconfig, or where the in-cluster configuration works): %v\n", err)
				} else {
					sys.More = append(sys.More, api.kind)
				}
			}
			if !dryRun && !yes {
				// Ask as fix does: show what would be restored first.
				planned := 0
				for _, o := range tu.Rollback(cmd.Context(), true) {
					if o.Result == tune.Planned {
						planned++
					}
				}
				if planned > 0 {
					fmt.Fprintf(out, "Rollback would restore %d value(s) nodetune changed (see them with --dry-run).\n", planned)
					ok, err := confirm(cmd.Context(), cmd.InOrStdin(), out, planned, "Restore")
					if err != nil {
						return &exitError{code: exitIncomplete, err: err}
					}
					if !ok {
						fmt.Fprintln(out, "Nothing was changed.")
						return exitCode(exitIncomplete)
					}
				}
			}
			outcomes := tu.Rollback(cmd.Context(), dryRun)
			if dryRun {
				printRollbackCommands(out, outcomes)
			} else if len(outcomes) == 0 {
				fmt.Fprintln(out, "Nothing to roll back: nodetune owns no changed value.")
			} else {
				fmt.Fprintln(out, "Rollback, newest change first:")
				printOutcomes(out, outcomes)
			}
			code := outcomeCode(outcomes)
			if dryRun && slices.ContainsFunc(outcomes, func(o tune.Outcome) bool { return o.Result == tune.Planned }) {
				// As with fix --dry-run: 0 only when nothing is left to restore.
				code = max(code, exitIncomplete)
			}
			if hold && !dryRun {
				held, err := tu.Hold(outcomes)
				printHolds(out, held)
				if err != nil {
					return &exitError{code: exitFailure, err: fmt.Errorf("recording the holds: %w", err)}
				}
			}
			return exitCode(code)
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", defaultStateDir, "directory of the journal")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "restore without asking")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the commands that would restore the values, and change nothing")
	calico.register(cmd.Flags(), false)
	cmd.Flags().BoolVar(&hold, "hold", true, "keep nodetune fix and serve --mode remediate from making the rolled-back changes again, until nodetune fix --release RULE|all")
	return cmd
}

// printHolds says which changes the rollback holds, and how to lift them.
func printHolds(w io.Writer, holds []tune.Hold) {
	if len(holds) == 0 {
		return
	}
	fmt.Fprintln(w, "\nHeld: nodetune fix and nodetune serve --mode remediate will not make these changes again")
	for _, h := range holds {
		fmt.Fprintf(w, "  %s [%s]\n", h.Key, esc(h.Rule))
	}
	fmt.Fprintln(w, "To allow them again: nodetune fix --release RULE (or --release all).")
}

// printRollbackCommands writes a shell script that restores by hand what
// rollback would restore, with the entries it would leave as comments.
func printRollbackCommands(w io.Writer, outcomes []tune.Outcome) {
	fmt.Fprintln(w, "# nodetune rollback --dry-run: the commands that restore the original values, newest first")
	if len(outcomes) == 0 {
		fmt.Fprintln(w, "# nothing to roll back: nodetune owns no changed value")
	}
	// Every argument of a command is quoted (tune.Outcome.Command), and a
	// comment is escaped whole, so no name or message can end the comment
	// and smuggle a command into the script.
	for _, o := range outcomes {
		switch o.Result {
		case tune.Planned:
			why := fmt.Sprintf("was %s, set by %s", o.Change.From, o.Change.Rule)
			if o.Note != "" {
				why += "; " + o.Note
			}
			fmt.Fprintf(w, "%s   # %s\n", o.Command, esc(why))
		case tune.Closed:
			if o.Note != "" {
				fmt.Fprintf(w, "# %s\n", esc(fmt.Sprintf("%s: %s", o.Change.Key, o.Note)))
				continue
			}
			fmt.Fprintf(w, "# %s\n", esc(fmt.Sprintf("%s is already at its original %s: nothing to do", o.Change.Key, o.Change.To)))
		default:
			fmt.Fprintf(w, "# %s\n", esc(fmt.Sprintf("%s %s: %v", o.Result, o.Change.Key, o.Err)))
		}
	}
}
