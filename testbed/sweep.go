package testbed

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Sweep removes the namespaces named prefix-<pid>-... whose creating
// process no longer runs, the leftovers of a run that was killed before it
// could clean up, and returns their names. Namespaces of live processes,
// this one included, are left alone.
func Sweep(prefix string) ([]string, error) {
	names, err := owned(prefix)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for name, pid := range names {
		if alive(pid) {
			continue
		}
		if err := deleteNamed(name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	sort.Strings(removed)
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("sweeping leftover testbeds: %w", err)
	}
	return removed, nil
}

// Leftovers lists the namespaces named prefix-<pid>-..., whoever made them.
func Leftovers(prefix string) ([]string, error) {
	names, err := owned(prefix)
	out := make([]string, 0, len(names))
	for name := range names {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, err
}

// owned maps each namespace named prefix-<pid>-... (DefaultPrefix when
// prefix is empty) to the pid that made it.
func owned(prefix string) (map[string]int, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, classify("listing "+netnsDir, err)
	}
	out := map[string]int{}
	for _, e := range entries {
		if pid, ok := parseName(prefix, e.Name()); ok {
			out[e.Name()] = pid
		}
	}
	return out, nil
}

// parseName returns the creator's pid from a namespace name of the form
// prefix-<pid>-<rest>, and whether name has that form.
func parseName(prefix, name string) (pid int, ok bool) {
	rest, ok := strings.CutPrefix(name, prefix+"-")
	if !ok {
		return 0, false
	}
	num, tail, ok := strings.Cut(rest, "-")
	if !ok || tail == "" || num == "" || num[0] == '+' || num[0] == '-' {
		return 0, false
	}
	pid, err := strconv.Atoi(num)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// alive reports whether process pid exists. EPERM means it exists but
// belongs to someone else.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
