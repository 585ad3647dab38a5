package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodetune/nodetune/probes"
	"github.com/nodetune/nodetune/probes/probestest"
)

// invocation is one run of the command line against a fixture node.
type invocation struct {
	out    string
	code   int
	probed bool // the node was opened: the measurement had started
}

// invoke runs `nodetune args...` as main does, with the fixture node in dir
// standing in for the host, and reports whether it got as far as probing.
func invoke(t *testing.T, dir string, args ...string) invocation {
	t.Helper()
	var inv invocation
	g := newGlobals()
	g.prober = func() (*probes.Prober, func(), error) {
		inv.probed = true
		return probestest.Load(t, dir), func() {}, nil
	}
	root := newRoot(g)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	inv.code = execute(context.Background(), root, args)
	inv.out = out.String()
	return inv
}

const healthyNode = "../../testdata/nodes/healthy"

// TestBadInputsAreUsageErrors: every flag value that cannot be meant is
// refused as bad usage (exit 3) before anything is measured or planned.
func TestBadInputsAreUsageErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"doctor NaN warn":          {"doctor", "--conntrack.warn", "NaN"},
		"doctor Inf critical":      {"doctor", "--conntrack.critical", "+Inf"},
		"doctor NaN sync":          {"doctor", "--kube-proxy.sync-seconds", "nan"},
		"fix NaN steal":            {"fix", "--dry-run", "--steal.warn", "NaN", "--state-dir", t.TempDir()},
		"serve NaN softirq":        {"serve", "--softirq.busy", "NaN"},
		"doctor window 1ms":        {"doctor", "--window", "1ms"},
		"fix window 1ms":           {"fix", "--dry-run", "--window", "1ms", "--state-dir", t.TempDir()},
		"serve interval 1ns":       {"serve", "--probe.interval", "1ns"},
		"serve window 1ms":         {"serve", "--probe.window", "1ms"},
		"fix empty state dir":      {"fix", "--yes", "--state-dir", ""},
		"fix dry empty state dir":  {"fix", "--dry-run", "--state-dir", ""},
		"fix state dir is a file":  {"fix", "--yes", "--state-dir", file},
		"fix state dir under file": {"fix", "--yes", "--state-dir", filepath.Join(file, "sub")},
		"rollback empty state dir": {"rollback", "--state-dir", ""},
		"rollback state dir file":  {"rollback", "--state-dir", file},
		"serve empty state dir":    {"serve", "--mode", "remediate", "--state-dir", ""},
		"serve verify margin <0":   {"serve", "--mode", "remediate", "--peer.verify-margin", "-0.5", "--state-dir", t.TempDir()},
		"serve verify margin 1":    {"serve", "--mode", "remediate", "--peer.verify-margin", "1", "--state-dir", t.TempDir()},
		"serve verify no token":    {"serve", "--mode", "remediate", "--peer.verify", "10.0.0.2", "--state-dir", t.TempDir()},
		"fix verify no token":      {"fix", "--yes", "--verify-peer", "10.0.0.2", "--state-dir", t.TempDir()},
		"fix verify no token file": {"fix", "--yes", "--verify-peer", "10.0.0.2", "--peer.token-file", filepath.Join(file, "none"), "--state-dir", t.TempDir()},
		"fix token without peer":   {"fix", "--yes", "--peer.token-file", file, "--state-dir", t.TempDir()},
		"fix verify margin 2":      {"fix", "--yes", "--verify-peer", "10.0.0.2", "--peer.token-file", file, "--peer.verify-margin", "2", "--state-dir", t.TempDir()},
	} {
		t.Run(name, func(t *testing.T) {
			inv := invoke(t, healthyNode, args...)
			if inv.code != exitUsage {
				t.Errorf("exit %d, want %d (usage)\n%s", inv.code, exitUsage, inv.out)
			}
			if inv.probed || strings.Contains(inv.out, "Plan") {
				t.Errorf("the node was measured before the bad flag was refused:\n%s", inv.out)
			}
		})
	}
}

// TestGoodMinimumsAccepted: the documented minimums themselves are valid.
func TestGoodMinimumsAccepted(t *testing.T) {
	inv := invoke(t, healthyNode, "doctor", "--window", minWindow.String())
	if inv.code != exitOK {
		t.Errorf("doctor --window %s: exit %d\n%s", minWindow, inv.code, inv.out)
	}
}

// TestVersionFlag: --version works like the version subcommand.
func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		inv := invoke(t, healthyNode, args...)
		if inv.code != exitOK || strings.TrimSpace(inv.out) != "nodetune "+version {
			t.Errorf("nodetune %v: exit %d, %q", args, inv.code, inv.out)
		}
	}
}

// TestRollbackTakesYes: rollback accepts --yes as fix does, and without
// --yes and without a terminal it refuses to act, as fix does.
func TestRollbackTakesYes(t *testing.T) {
	dir := t.TempDir()
	inv := invoke(t, healthyNode, "rollback", "--yes", "--state-dir", dir)
	if inv.code != exitOK || !strings.Contains(inv.out, "Nothing to roll back") {
		t.Errorf("rollback --yes: exit %d\n%s", inv.code, inv.out)
	}
}

// TestEmptyProcFSCouldNotRun: a --path.procfs with no procfs in it is
// "could not run" (exit 4), not a clean bill of health.
func TestEmptyProcFSCouldNotRun(t *testing.T) {
	empty := t.TempDir()
	for _, args := range [][]string{
		{"doctor", "--window", "100ms", "--kube-proxy.url=", "--path.procfs", empty},
		{"doctor", "--window", "100ms", "--kube-proxy.url=", "--path.procfs", filepath.Join(empty, "missing")},
	} {
		var out bytes.Buffer
		root := newRoot(newGlobals())
		root.SetOut(&out)
		root.SetErr(&out)
		if code := execute(context.Background(), root, args); code != exitFailure {
			t.Errorf("nodetune %v: exit %d, want %d\n%s", args, code, exitFailure, out.String())
		}
		if strings.Contains(out.String(), "No findings") {
			t.Errorf("nodetune %v reports no findings on no procfs:\n%s", args, out.String())
		}
	}
}

// TestInterruptExits130: Ctrl-C during doctor's window ends it at once with
// exit 130 and says it was interrupted, not "context canceled".
func TestInterruptExits130(t *testing.T) {
	bin := nodetuneBinary(t)
	for sig, want := range map[syscall.Signal]int{syscall.SIGINT: 130, syscall.SIGHUP: 129} {
		cmd := exec.Command(bin, "doctor", "--window", "30s", "--kube-proxy.url=")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // into the window
		start := time.Now()
		_ = cmd.Process.Signal(sig)
		_ = cmd.Wait()
		code := cmd.ProcessState.ExitCode()
		if code != want || time.Since(start) > 5*time.Second {
			t.Errorf("%v: exit %d after %s, want %d at once\n%s", sig, code, time.Since(start), want, out.String())
		}
		if !strings.Contains(out.String(), "interrupted by") || strings.Contains(out.String(), "context canceled") {
			t.Errorf("%v: the output does not say it was interrupted:\n%s", sig, out.String())
		}
	}
}

// TestFixDryRunExitsIncomplete: a dry run with changes pending exits 1, as
// a plan that was not confirmed does; 0 is kept for "nothing to do".
func TestFixDryRunExitsIncomplete(t *testing.T) {
	inv := invoke(t, "../../testdata/nodes/busy-node", "fix", "--dry-run", "--rule", "softnet-drops", "--state-dir", t.TempDir())
	if inv.code != exitIncomplete || !strings.Contains(inv.out, "Plan: ") || !strings.Contains(inv.out, "not applied") {
		t.Errorf("fix --dry-run with changes pending: exit %d, want %d\n%s", inv.code, exitIncomplete, inv.out)
	}
	inv = invoke(t, healthyNode, "fix", "--dry-run", "--state-dir", t.TempDir())
	if inv.code != exitOK {
		t.Errorf("fix --dry-run on a healthy node: exit %d, want 0\n%s", inv.code, inv.out)
	}
}
