// Package kubetest starts a real Kubernetes API server for tests: Debian's
// etcd and a kube-apiserver built from the Go module proxy (make deps, or
// hack/kube/build.sh), both on loopback ports (or, with StartWith, in a
// network namespace on an address of it), with certificates, an admin
// token and a service-account signing key generated into a temporary
// directory.
//
// One server serves a whole test binary. A package that uses it runs its
// tests through Main, which stops the server when they are done:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
// and each test that needs the server calls Get. Where kube-apiserver,
// kubectl or etcd are missing the test skips, except under CI=true (or
// NODETUNE_PRIVILEGED_TESTS=1), where it fails, as internal/privtest
// decides.
package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nodetune/nodetune/internal/privtest"
)

var (
	once    sync.Once
	shared  *Cluster
	errInit error
)

// Main runs the package's tests and then stops the API server if one was
// started. It calls os.Exit.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain with more to clean up: it runs the tests,
// stops the API server, and returns the exit code.
func Run(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	return code
}

// Get returns the test binary's API server, starting it on first use.
// It skips t in -short runs or when the programs are missing (failing
// instead where privileged tests are mandatory), and fails t when the
// server does not start.
func Get(t testing.TB) *Cluster {
	t.Helper()
	gate(t)
	Tool(t, "kube-apiserver")
	Tool(t, "etcd")
	once.Do(func() {
		shared, errInit = Start(context.Background())
	})
	if errInit != nil {
		t.Fatalf("starting etcd and kube-apiserver: %v", errInit)
	}
	return shared
}

// gate skips tests that start real servers in -short runs and when
// NODETUNE_PRIVILEGED_TESTS=0, like privtest.Root, but without requiring
// root: an API server needs none.
func gate(t testing.TB) {
	t.Helper()
	if os.Getenv("NODETUNE_PRIVILEGED_TESTS") == "0" || testing.Short() && !privtest.Mandatory() {
		t.Skip("API server test skipped: -short or NODETUNE_PRIVILEGED_TESTS=0")
	}
}

// Tool returns the path of one of the programs the harness runs
// (kube-apiserver, kubectl, etcd), looked up first in the repository's
// .cache/bin, where make deps puts the versions the tests are written
// for, then in PATH. It skips t when the
// program is missing, or fails it where privileged tests are mandatory.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := lookTool(name)
	if err != nil {
		privtest.Skip(t, fmt.Sprintf("%s: %v (make deps builds it)", name, err))
	}
	return p
}

// lookTool finds name in <repository>/.cache/bin or in PATH.
func lookTool(name string) (string, error) {
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, ".cache", "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("not in .cache/bin nor in PATH")
	}
	return p, nil
}

// RepoRoot returns the repository's top directory: the nearest parent of
// the working directory that holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// ForTest starts an API server of t's own and stops it when t ends, for a
// package that has no TestMain calling Main. It gates t as Get does.
func ForTest(t testing.TB) *Cluster {
	t.Helper()
	gate(t)
	Tool(t, "kube-apiserver")
	Tool(t, "etcd")
	c, err := Start(context.Background())
	if err != nil {
		t.Fatalf("starting etcd and kube-apiserver: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}
