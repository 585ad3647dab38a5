package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodetune/nodetune/detect"
)

// The shortest measurement window and probe interval nodetune accepts
// (docs/doctor.md, docs/serve.md). /proc/stat counts CPU time in clock
// ticks of 10 ms (USER_HZ 100): 100 ms gives each CPU about ten, so a
// ratio such as idle is known to about 10%; less is not a measurement.
// A probe cycle reads every counter and device of the node, so cycles
// closer than a second would make the agent the load it measures.
const (
	minWindow   = 100 * time.Millisecond
	minInterval = time.Second
)

// checkWindow refuses a measurement window below minWindow.
func checkWindow(flag string, d time.Duration) error {
	if d < minWindow {
		return fmt.Errorf("%s is %s; want at least %s (CPU time is counted in 10 ms ticks, so a shorter window measures nothing)", flag, d, minWindow)
	}
	return nil
}

// checkStateDir looks at --state-dir before anything is measured, so that
// a value that cannot work is reported at once and not after the window
// and the plan. An empty value, or a path that is (or lies under) a file,
// is bad usage: a plain error, exit 3. With write, a directory that exists
// (or would be created under an existing one) but cannot be written is
// exit 4, as a journal that cannot be written is.
func checkStateDir(dir string, write bool) error {
	if dir == "" {
		return fmt.Errorf("--state-dir is empty; give the journal's directory (default %s)", defaultStateDir)
	}
	at := dir
	for {
		fi, err := os.Stat(at)
		switch {
		case err == nil && !fi.IsDir():
			return fmt.Errorf("--state-dir %s: %s is not a directory", dir, at)
		case err == nil:
			if !write {
				return nil
			}
			if err := unix.Access(at, unix.W_OK|unix.X_OK); err != nil {
				err = detect.Classify(fmt.Sprintf("--state-dir %s: %s is not writable", dir, at), &fs.PathError{Op: "access", Path: at, Err: err})
				return &exitError{code: exitFailure, err: err}
			}
			return nil
		case errors.Is(err, fs.ErrNotExist):
			parent := filepath.Dir(at)
			if parent == at {
				return nil
			}
			at = parent
		case errors.Is(err, unix.ENOTDIR):
			at = filepath.Dir(at) // a file somewhere above: the loop finds it
		default:
			return &exitError{code: exitFailure, err: detect.Classify("--state-dir "+dir, err)}
		}
	}
}
