// Package privtest decides whether a privileged test (one that creates
// network namespaces, devices, or starts real servers) runs here.
//
// Under CI=true or NODETUNE_PRIVILEGED_TESTS=1 such a test must run: if it
// cannot, it fails loudly. Elsewhere it skips and says why.
package privtest

import (
	"os"
	"os/exec"
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
