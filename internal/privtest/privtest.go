// Package privtest decides whether a privileged test (one that creates
// network namespaces, devices, or starts real servers) runs here.
//
// Under CI=true or NODETUNE_PRIVILEGED_TESTS=1 such a test must run: if it
// cannot, it fails loudly. Elsewhere it skips and says why.
package privtest

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// Mandatory reports whether privileged tests must run rather than skip.
func Mandatory() bool {
	if v := os.Getenv("NODETUNE_PRIVILEGED_TESTS"); v != "" {
		return v == "1"
	}
	return os.Getenv("CI") == "true"
}

// Skip skips t with reason, or fails it when privileged tests are mandatory.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if Mandatory() {
		t.Fatalf("privileged test cannot run: %s (CI=true or NODETUNE_PRIVILEGED_TESTS=1 makes this a failure)", reason)
	}
	t.Skipf("privileged test skipped: %s (run as root, or set NODETUNE_PRIVILEGED_TESTS=1 to require it)", reason)
}

// Root requires root, and skips -short runs and explicit opt-outs.
func Root(t testing.TB) {
	t.Helper()
	if os.Getenv("NODETUNE_PRIVILEGED_TESTS") == "0" || testing.Short() && !Mandatory() {
		t.Skip("privileged test skipped: -short or NODETUNE_PRIVILEGED_TESTS=0")
	}
	if os.Geteuid() != 0 {
		Skip(t, "not running as root")
	}
}

// Tool returns the path of an external program the test needs.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Skip(t, name+" is not installed (make deps installs it)")
	}
	return p
}

// globalLock is held by a test that changes a setting every network
// namespace shares, such as net.netfilter.nf_conntrack_max, so that test
// binaries running in parallel never interleave their changes and restores.
const globalLock = "/run/nodetune-tests.lock"

// LockGlobal takes the machine-wide lock for global settings until t ends.
func LockGlobal(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(globalLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("opening %s: %v", globalLock, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("locking %s: %v", globalLock, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// SetSysctl writes a global sysctl under <procfs>/sys for the rest of t,
// holding LockGlobal, and restores the old value when t ends.
func SetSysctl(t testing.TB, key, value string) {
	t.Helper()
	LockGlobal(t)
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		t.Fatalf("setting %s=%s: %v", key, value, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(path, old, 0o644); err != nil {
			t.Errorf("restoring %s to %s: %v", key, strings.TrimSpace(string(old)), err)
		}
	})
}
