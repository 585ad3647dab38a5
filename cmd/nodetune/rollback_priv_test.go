package main

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// onTerminal runs nodetune args in ns on a pseudo-terminal (script(1)),
// types reply once it asks, and returns the output and exit code. A
// Ctrl-C typed before nodetune runs would reach nobody, so the reply waits
// for the prompt.
func onTerminal(t *testing.T, ns, reply string, args ...string) (string, int) {
	t.Helper()
	script := privtest.Tool(t, "script")
	line := strings.Join(append([]string{"ip", "netns", "exec", ns, nodetuneBinary(t)}, args...), " ")
	cmd := exec.Command(script, "-qec", line, "/dev/null")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	asked := time.NewTicker(50 * time.Millisecond)
	defer asked.Stop()
	for {
		select {
		case err = <-done:
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatalf("%s: %v", line, err)
			}
			return out.String(), cmd.ProcessState.ExitCode()
		case <-asked.C:
			if reply != "" && strings.Contains(out.String(), "[y/N]") {
				in.Write([]byte(reply))
				reply = ""
			}
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("%s did not end within 60 s:\n%s", line, out.String())
		}
	}
}

// TestRollbackAsksOnATerminal: rollback without --yes asks on a terminal
// as fix does: "n" restores nothing and exits 1, Ctrl-C at the prompt exits
// 130 at once, "y" restores. Without a terminal and without --yes it
// changes nothing and says to give --yes.
func TestRollbackAsksOnATerminal(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	dir := t.TempDir()
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...), exitOK, "fix")
	offloadOn := func() bool { return features(t, a, a.Tunnel)[detect.FeatureTxChecksumGeneric].Active }
	noYes := slices.DeleteFunc(rollbackArgs(dir), func(s string) bool { return s == "--yes" })

	r := nodetuneIn(t, a.NS, nil, nil, noYes...)
	if r.code != exitIncomplete || !strings.Contains(r.out, "--yes") || !offloadOn() {
		t.Errorf("rollback without --yes and without a terminal: exit %d, offload on %v\n%s", r.code, offloadOn(), r.out)
	}
	for reply, want := range map[string]int{"n\n": exitIncomplete, "\x03": 130} {
		out, code := onTerminal(t, a.NS, reply, noYes...)
		if !strings.Contains(out, "Restore this change? [y/N]") || code != want || !offloadOn() {
			t.Errorf("answering %q: exit %d (want %d), offload on %v\n%s", reply, code, want, offloadOn(), out)
		}
	}
	out, code := onTerminal(t, a.NS, "y\n", noYes...)
	if code != exitOK || offloadOn() {
		t.Errorf("answering y: exit %d, offload on %v\n%s", code, offloadOn(), out)
	}
}

// TestRollbackDryRunExitStatus: like fix --dry-run, rollback --dry-run
// exits 0 only when there is nothing to restore, so that it answers "is
// everything nodetune owned back?": 1 while a restore is pending, 0 once
// the rollback was made.
func TestRollbackDryRunExitStatus(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	dir := t.TempDir()
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...), exitOK, "fix")
	r := nodetuneIn(t, a.NS, nil, nil, "rollback", "--dry-run", "--state-dir", dir)
	expectCode(t, r, exitIncomplete, "rollback --dry-run with a restore pending")
	if !strings.Contains(r.out, "ethtool -K "+a.Tunnel) {
		t.Errorf("the dry run does not print the restore:\n%s", r.out)
	}
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir)...), exitOK, "rollback")
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, "rollback", "--dry-run", "--state-dir", dir), exitOK, "rollback --dry-run after the rollback")
}
