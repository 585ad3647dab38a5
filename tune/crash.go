package tune

import (
	"os"
	"syscall"
)

// CrashEnv names the environment variable of the crash hook that the
// kill-at-every-step tests use: "STEP" or "STEP:N" makes the process kill
// itself with SIGKILL the Nth time (default first) it passes STEP. Steps are
// intent, write, applied, verified, revert, restore and restored, and, in a
// rewrite of the journal (migration, compaction), rewrite (the new file
// written, not yet renamed) and renamed (renamed, directory not yet synced). Only a
// binary built with the nodetunetest build tag reads it (crash_hook.go);
// a release build ignores it.
const CrashEnv = "NODETUNE_TEST_CRASH_AT"

// crasher is the crash hook; nil when CrashEnv is unset.
type crasher struct {
	step string
	n    int
	seen map[string]int
}

// at kills the process if this is the step and time it was told to.
func (c *crasher) at(step string) {
	if c == nil {
		return
	}
	c.seen[step]++
	if step == c.step && c.seen[step] == c.n {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not delivered synchronously; never go on
	}
}
