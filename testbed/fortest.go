package testbed

import (
	"errors"
	"testing"

	"github.com/nodetune/nodetune/detect"

	"github.com/nodetune/nodetune/internal/privtest"
)

// NewForTest builds a bed for test t and removes it when t ends. It skips t
// where privileged tests may not run, or where the kernel lacks Geneve or
// IPIP when those are asked for; it fails t when privileged tests must run
// (CI=true) but a VXLAN bed cannot be built.
func NewForTest(t testing.TB, opts Options) *Bed {
	t.Helper()
	privtest.Root(t)
	b, err := New(opts)
	if errors.Is(err, detect.ErrNotSupported) {
		if opts.Kind != "" && opts.Kind != detect.KindVXLAN {
			// Like vishvananda/netlink's tests: a kernel built without
			// Geneve or IPIP truly cannot run the test, CI or not.
			t.Skipf("this kernel has no %s devices: %v", opts.Kind, err)
		}
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
