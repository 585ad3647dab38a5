//go:build !nodetunetest

package tune

import "testing"

// TestCrashHookOnlyInTestBuilds: the crash hook makes nodetune kill itself
// when an environment variable says so. A binary built without the
// nodetunetest tag (every release build, and this test binary) must ignore
// the variable.
func TestCrashHookOnlyInTestBuilds(t *testing.T) {
	t.Setenv(CrashEnv, "intent:1")
	if c := crasherFromEnv(); c != nil {
		t.Fatalf("%s=intent:1 armed the crash hook in a build without the nodetunetest tag: %+v", CrashEnv, c)
	}
}
