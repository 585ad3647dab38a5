package probes

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/nodetune/nodetune/detect"
)

// FelixProcesses returns the PIDs of the Felix processes under procfs:
// calico-node -felix (calico-node's image) or calico-felix. Felix exits
// and is started again when its featureDetectOverride changes, so a new
// PID is how nodetune sees that it restarted. Processes that end while
// they are read are skipped; procfs unreadable is an error.
func FelixProcesses(procfs string) ([]int, error) {
	dirs, err := os.ReadDir(procfs)
	if err != nil {
		return nil, detect.Classify("listing processes", err)
	}
	var out []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid <= 0 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procfs, d.Name(), "cmdline"))
		if err != nil {
			continue // gone, or a kernel thread
		}
		if IsFelixCmdline(b) {
			out = append(out, pid)
		}
	}
	return out, nil
}

// ErrCmdline marks a /proc/PID/cmdline that is not NUL-separated text.
var ErrCmdline = errors.New("malformed cmdline")

// IsFelixCmdline reports whether a /proc/PID/cmdline (arguments separated
// by NUL bytes) is Felix's.
func IsFelixCmdline(b []byte) bool {
	args, err := parseCmdline(b)
	if err != nil || len(args) == 0 {
		return false
	}
	switch filepath.Base(args[0]) {
	case "calico-felix":
		return true
	case "calico-node":
		for _, a := range args[1:] {
			if a == "-felix" || a == "--felix" {
				return true
			}
		}
	}
	return false
}

// parseCmdline splits a cmdline into its arguments.
func parseCmdline(b []byte) ([]string, error) {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil, nil
	}
	var out []string
	for a := range bytes.SplitSeq(b, []byte{0}) {
		out = append(out, string(a))
	}
	if len(out) > 4096 {
		return nil, fmt.Errorf("%w: %d arguments", ErrCmdline, len(out))
	}
	return out, nil
}
