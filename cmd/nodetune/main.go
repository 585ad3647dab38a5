// Command nodetune finds why a Kubernetes node's pod network is slow,
// explains it in numbers, and fixes what is safe to fix.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes. doctor uses 0, 1 and 2 for its verdict; the others mean
// nodetune itself could not do its job.
const (
	exitOK       = 0
	exitWarning  = 1
	exitCritical = 2
	exitUsage    = 3
	exitFailure  = 4
)

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// subcommands are added to the root by each command's file.
var subcommands []func(g *globals) *cobra.Command

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	root := newRoot(newGlobals())
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			slog.Error(ee.err.Error())
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "nodetune:", err)
	return exitUsage
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "nodetune",
		Short: "Find, explain and fix what costs a Kubernetes node its network performance",
		Long: "nodetune reads a node's kernel and NIC settings (tunnel offloads, softirq and steal time, conntrack,\n" +
			"kube-proxy) and says what costs pod networking throughput or latency, how much, and the exact fix.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.setup(cmd)
		},
	}
	g.register(root.PersistentFlags())
	for _, sub := range subcommands {
		root.AddCommand(sub(g))
	}
	return root
}
