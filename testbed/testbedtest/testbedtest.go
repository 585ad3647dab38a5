// Package testbedtest builds testbeds for tests: it skips or fails a test
// as the privileged-test rules say, and removes the bed when the test ends.
// It lives apart from testbed so that nodetune's binary, which runs beds
// for nodetune bench, does not link the testing package.
package testbedtest

import (
	"errors"
	"strings"
	"testing"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/testbed"

	"github.com/nodetune/nodetune/internal/privtest"
)

// New builds a bed for test t and removes it when t ends. It skips t
// where privileged tests may not run, and fails it when they must
// (CI=true) but the bed cannot be built. Use HasKind first for a kind other
// than VXLAN, which a kernel may lack.
func New(t testing.TB, opts testbed.Options) *testbed.Bed {
	t.Helper()
	privtest.Root(t)
	b, err := testbed.New(opts)
	if errors.Is(err, detect.ErrNotSupported) {
		privtest.Skip(t, "this kernel cannot build the testbed: "+err.Error())
	}
	if err != nil {
		t.Fatalf("building the testbed: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("removing the testbed: %v", err)
		}
	})
	return b
}

// HasKind reports whether this kernel can build a bed of kind. Where it
// cannot, HasKind checks what a user would see instead: New fails with
// ErrNotSupported, naming the kind, and leaves no namespace behind. So a
// test that runs its body only when HasKind is true still tests something
// on a kernel built without Geneve or IPIP, and never skips.
func HasKind(t testing.TB, kind string) bool {
	t.Helper()
	privtest.Root(t)
	prefix := "ntbkind"
	b, err := testbed.New(testbed.Options{Prefix: prefix, Kind: kind})
	if err == nil {
		if err := b.Close(); err != nil {
			t.Fatalf("removing the %s probe bed: %v", kind, err)
		}
		return true
	}
	if !errors.Is(err, detect.ErrNotSupported) || !strings.Contains(err.Error(), kind) {
		t.Fatalf("building a %s bed failed with %v, want ErrNotSupported naming %s", kind, err, kind)
	}
	left, lerr := testbed.Leftovers(prefix)
	if lerr != nil || len(left) != 0 {
		t.Fatalf("a failed %s bed left %v behind (%v)", kind, left, lerr)
	}
	t.Logf("this kernel has no %s devices; checked that nodetune says so cleanly: %v", kind, err)
	return false
}
