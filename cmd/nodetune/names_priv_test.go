package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// TestHostileDeviceNames: Linux lets a device be named `x$(id)` or `v;id`.
// fix prints its commands with every argument quoted, and the script that
// `rollback --dry-run` prints, piped into sh, restores the device and runs
// nothing else: an `id` earlier in PATH that would leave a mark is never
// called.
func TestHostileDeviceNames(t *testing.T) {
	privtest.Root(t)
	privtest.Tool(t, "ethtool")
	for _, name := range []string{"x$(id)", "v;id", "q'`id`"} {
		t.Run(name, func(t *testing.T) {
			b := testbedtest.New(t, testbed.Options{TunnelName: name})
			a := b.A
			setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
			dir := t.TempDir()
			quoted := "ethtool -K '" + strings.ReplaceAll(name, "'", `'\''`) + "' tx-checksum-ip-generic"

			r := nodetuneIn(t, a.NS, nil, nil, fixArgs(dir, "--dry-run")...)
			if !strings.Contains(r.out, "command: "+quoted+" on") {
				t.Errorf("fix --dry-run does not quote the name:\n%s", r.out)
			}
			expectCode(t, nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...), exitOK, "fix")
			if !features(t, a, a.Tunnel)[detect.FeatureTxChecksumGeneric].Active {
				t.Fatal("fix did not turn tx checksum offload on")
			}

			r = nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir, "--dry-run")...)
			expectCode(t, r, exitIncomplete, "rollback --dry-run")
			if !strings.Contains(r.out, quoted+" off") {
				t.Fatalf("rollback --dry-run does not quote the name:\n%s", r.out)
			}
			// The script is what goes to standard output; logs go to stderr.
			script, err := exec.Command("ip", append([]string{"netns", "exec", a.NS, nodetuneBinary(t)}, rollbackArgs(dir, "--dry-run")...)...).Output()
			var ee *exec.ExitError
			if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == exitIncomplete) {
				t.Fatalf("rollback --dry-run: %v", err)
			}

			bin := t.TempDir()
			mark := filepath.Join(t.TempDir(), "ran")
			if err := os.WriteFile(filepath.Join(bin, "id"), []byte("#!/bin/sh\ntouch "+mark+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			sh := exec.Command("ip", "netns", "exec", a.NS, "sh", "-e")
			sh.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
			sh.Stdin = strings.NewReader(string(script))
			if out, err := sh.CombinedOutput(); err != nil {
				t.Fatalf("sh ran the dry run's script: %v\n%s\nscript:\n%s", err, out, script)
			}
			if _, err := os.Stat(mark); err == nil {
				t.Errorf("piping the dry run into sh ran the command in the device name:\n%s", script)
			}
			if features(t, a, a.Tunnel)[detect.FeatureTxChecksumGeneric].Active {
				t.Errorf("the dry run's script did not turn tx checksum offload back off on %q:\n%s", name, script)
			}
		})
	}
}
