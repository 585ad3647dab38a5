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

// interruptedError is the cause of the context's end when a signal
// stopped nodetune.
type interruptedError struct{ sig syscall.Signal }

func (e *interruptedError) Error() string { return "interrupted by " + signalName(e.sig) }

// signalName is the SIG name of the signals nodetune handles.
func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return s.String()
}

// stopSignals end a run: Ctrl-C, the kubelet's SIGTERM, and SIGHUP (a
// closed terminal or a supervisor's "reload"), whose default action would
// kill serve without its rollback or its last log line.
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, stopSignals...)
	go func() {
		// The first signal cancels; later ones change nothing, so that a
		// second Ctrl-C cannot cut a rollback on exit short.
		for s := range sigs {
			if sig, ok := s.(syscall.Signal); ok {
				cancel(&interruptedError{sig: sig})
			}
		}
	}()
	code := run(ctx, os.Args[1:])
	signal.Stop(sigs)
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	return execute(ctx, newRoot(newGlobals()), args)
}

// execute runs root with args and returns the exit code. A command that a
// signal cut short exits 128 plus the signal's number (130 for Ctrl-C),
// as shells report it, with one line saying so instead of "context
// canceled"; a command that finished its work despite the signal (serve
// stopping cleanly) exits with its own code.
func execute(ctx context.Context, root *cobra.Command, args []string) int {
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var intr *interruptedError
	var ee *exitError
	switch {
	case errors.As(context.Cause(ctx), &intr):
		if errors.As(err, &ee) && ee.err != nil && !errors.Is(ee.err, context.Canceled) {
			slog.Error(ee.err.Error())
		}
		fmt.Fprintf(root.ErrOrStderr(), "nodetune: %s\n", intr)
		return 128 + int(intr.sig)
	case errors.As(err, &ee):
		if ee.err != nil {
			slog.Error(ee.err.Error())
		}
		return ee.code
	}
	fmt.Fprintln(root.ErrOrStderr(), "nodetune:", err)
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
		Version:       version,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.setup(cmd)
		},
	}
	root.SetVersionTemplate("nodetune {{.Version}}\n")
	g.register(root.PersistentFlags())
	for _, sub := range subcommands {
		root.AddCommand(sub(g))
	}
	return root
}
