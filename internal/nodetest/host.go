package nodetest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// What the kubelet changes outside the node's network and mount
// namespaces, and how the harness puts it back.
//
// The kubelet writes a few global sysctls at start (its
// protectKernelDefaults is false): they are saved into stateDir before it
// starts and written back when the node stops, or by the next run if this
// one was killed. Its pods' cgroups are under kubepods in every cgroup
// hierarchy; they are removed. Its iptables chains are in the node's
// network namespace and its mounts in the node's mount namespace: both go
// with the namespaces.

// stateDir keeps what a killed run must leave for the next one to restore.
const stateDir = "/run/nodetune-nodetest"

// sysctlsFile holds the saved global sysctls, "key value" per line.
var sysctlsFile = filepath.Join(stateDir, "sysctls")

// kubeletSysctls are the global sysctls the kubelet may write.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// workPrefix starts the name of every node's work directory, so that the
// processes of a killed run can be told by their command lines.
const workPrefix = "nodetune-nodetest-"

// saveSysctls records the current values, unless a killed run's record is
// still there (then restoreHost has not run yet; it restores that one).
func saveSysctls() error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	var b strings.Builder
	for _, k := range kubeletSysctls {
		v, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			return fmt.Errorf("reading %s: %w", k, err)
		}
		fmt.Fprintf(&b, "%s %s\n", k, bytes.TrimSpace(v))
	}
	return os.WriteFile(sysctlsFile, []byte(b.String()), 0o600)
}

// restoreSysctls writes the recorded values back and removes the record.
func restoreSysctls() error {
	data, err := os.ReadFile(sysctlsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok || !slices.Contains(kubeletSysctls, k) {
			errs = append(errs, fmt.Errorf("%s: unexpected line %q", sysctlsFile, line))
			continue
		}
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s to %s: %w", k, v, err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, os.Remove(sysctlsFile))
	}
	return errors.Join(errs...)
}

// checkSysctls compares the current values with a record made by
// saveSysctls's format, for a test that wants to see them restored.
func checkSysctls(saved string) error {
	var errs []error
	for line := range strings.SplitSeq(strings.TrimSpace(saved), "\n") {
		k, want, _ := strings.Cut(line, " ")
		got, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			errs = append(errs, err)
		} else if strings.TrimSpace(string(got)) != want {
			errs = append(errs, fmt.Errorf("%s is %s, was %s before the node", k, bytes.TrimSpace(got), want))
		}
	}
	return errors.Join(errs...)
}

// leftoverProcesses returns the pids of processes whose command line
// names a node work directory: containerd, the kubelet, containerd's
// shims (which outlive containerd), and the pods' processes do not name
// it, but die with their shims.
func leftoverProcesses() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // gone
		}
		if bytes.Contains(cmdline, []byte(filepath.Join(os.TempDir(), workPrefix))) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killLeftovers kills the leftover processes and waits for them to go.
func killLeftovers() error {
	pids, err := leftoverProcesses()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if pids, err = leftoverProcesses(); err != nil || len(pids) == 0 {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("processes %v survive SIGKILL", pids)
}

// cgroupRoot is the test kubelet's own cgroup parent (its cgroupRoot), in
// every hierarchy. Its pods' cgroups live below it, and the sweep removes
// only what is below it: on a machine that is itself a Kubernetes node, the
// real kubelet's /kubepods is never touched.
const cgroupRoot = "nodetune-nodetest"

// cgroupRoots are the test kubelet's cgroup parents that exist, one per
// hierarchy (cgroup v1) or the one in the unified hierarchy.
func cgroupRoots() []string {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupRoot)
	if _, err := os.Stat("/sys/fs/cgroup/" + cgroupRoot); err == nil {
		roots = append(roots, "/sys/fs/cgroup/"+cgroupRoot)
	}
	return roots
}

// makeCgroupRoot creates cgroupRoot in every hierarchy, as the kubelet
// requires of its cgroupRoot: under cgroup v2 in the unified one; under v1
// in each mounted hierarchy (links such as cpu,cpuacct are the same one),
// with the cpuset hierarchy's cpus and mems copied from its parent, since a
// new v1 cpuset starts empty and takes no process.
func makeCgroupRoot() error {
	hierarchies := []string{"/sys/fs/cgroup"}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil { // cgroup v1
		hierarchies = nil
		entries, err := os.ReadDir("/sys/fs/cgroup")
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
				hierarchies = append(hierarchies, filepath.Join("/sys/fs/cgroup", e.Name()))
			}
		}
	}
	for _, h := range hierarchies {
		dir := filepath.Join(h, cgroupRoot)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("creating the kubelet's cgroup root: %w", err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			v, err := os.ReadFile(filepath.Join(h, f))
			if err != nil {
				continue // not the cpuset hierarchy
			}
			if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
				return fmt.Errorf("creating the kubelet's cgroup root: %s: %w", f, err)
			}
		}
	}
	return nil
}

// killPods kills every process in the test kubelet's cgroups: the pods'
// processes, which name no work directory and outlive their shims.
func killPods() {
	for _, root := range cgroupRoots() {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for f := range strings.FieldsSeq(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
}

// removeCgroups kills what is left in the test kubelet's cgroups and
// removes them, its cgroup root included, deepest first (rmdir fails while
// a process is in one).
func removeCgroups() error {
	killPods()
	var errs []error
	for _, root := range cgroupRoots() {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for range 20 { // a cgroup can stay busy for a moment after its last process exits
				if err = syscall.Rmdir(dirs[i]); err == nil || errors.Is(err, fs.ErrNotExist) {
					err = nil
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// restoreHost undoes everything a node (this one, or a killed run's)
// left on the host outside its namespaces.
func restoreHost() error {
	return errors.Join(killLeftovers(), removeCgroups(), restoreSysctls())
}
