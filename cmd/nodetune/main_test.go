package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	buildDir  string
	builtBin  string
	buildErr  error
)

// TestMain removes the binary nodetuneBinary built, whatever the tests did.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// nodetuneBinary builds nodetune once per test run, so that it can be
// started inside a testbed namespace with `ip netns exec`. It is built as
// make build builds it (static, -trimpath, no symbol table), so that the
// serve benchmark measures the binary that ships, plus the nodetunetest tag,
// which arms the crash hook (tune.CrashEnv) that the kill tests use; a
// release build has none.
func nodetuneBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "nodetune-test-")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "nodetune")
		cmd := exec.Command("go", "build", "-tags", "nodetunetest", "-trimpath", "-ldflags=-s -w", "-o", builtBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}
