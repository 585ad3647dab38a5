package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// TestRollbackOfARecreatedTunnel: after fix, the tunnel is deleted and a
// new one with the same name is created, as a CNI restart does. rollback
// leaves the new device alone, says the old one is gone, and exits 0; the
// next rollback has nothing to do.
func TestRollbackOfARecreatedTunnel(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	dir := t.TempDir()
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...), exitOK, "fix")

	old, err := a.Netlink().LinkByName(a.Tunnel)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Netlink().LinkDel(old); err != nil {
		t.Fatal(err)
	}
	v := *old.(*netlink.Vxlan)
	v.LinkAttrs = netlink.LinkAttrs{Name: a.Tunnel}
	if err := a.Netlink().LinkAdd(&v); err != nil {
		t.Fatal(err)
	}
	if !features(t, a, a.Tunnel)[detect.FeatureTxChecksumGeneric].Active {
		t.Fatal("the new tunnel starts with offload off")
	}

	r := nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir, "--dry-run")...)
	expectCode(t, r, exitOK, "rollback --dry-run")
	if strings.Contains(r.out, "ethtool -K") || !strings.Contains(r.out, "gone") {
		t.Errorf("the dry run would write to the new device:\n%s", r.out)
	}
	r = nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir)...)
	expectCode(t, r, exitOK, "rollback")
	if !strings.Contains(r.out, "gone") {
		t.Errorf("rollback does not say the device is gone:\n%s", r.out)
	}
	if !features(t, a, a.Tunnel)[detect.FeatureTxChecksumGeneric].Active {
		t.Error("rollback wrote onto the new tunnel")
	}
	r = nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir)...)
	if r.code != exitOK || !strings.Contains(r.out, "Nothing to roll back") {
		t.Errorf("second rollback: exit %d\n%s", r.code, r.out)
	}
}

// TestRollbackAfterTheNamespaceIsGone: fix ran inside a network namespace
// that has since been deleted (a pod's, say). rollback, run from the
// host's namespace, looks for anything that still holds that namespace.
// Where every process can be inspected, nothing does: it closes the
// entries as gone and exits 0, and a second rollback has nothing to do.
// Where some process cannot be inspected (a sandbox's init, as on the
// machine these tests were written on), that cannot be told: the entry
// stays open, rollback says why and exits 2, and nothing is written.
func TestRollbackAfterTheNamespaceIsGone(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	dir := t.TempDir()
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...), exitOK, "fix")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	r := runHere(t, rollbackArgs(dir)...)
	if hidden := uninspectable(); hidden != "" {
		t.Logf("%s cannot be inspected here: whether the namespace is gone cannot be told", hidden)
		expectCode(t, r, exitChangeFailed, "rollback while a process cannot be inspected")
		if !strings.Contains(r.out, "could not be told") || !strings.Contains(r.out, "run nodetune there") {
			t.Errorf("rollback does not say why it cannot tell:\n%s", r.out)
		}
		return
	}
	expectCode(t, r, exitOK, "rollback after the namespace is gone")
	if !strings.Contains(r.out, "gone") || !strings.Contains(r.out, "no longer exists") {
		t.Errorf("rollback does not say the namespace is gone:\n%s", r.out)
	}
	r = runHere(t, rollbackArgs(dir)...)
	if r.code != exitOK || !strings.Contains(r.out, "Nothing to roll back") {
		t.Errorf("second rollback: exit %d\n%s", r.code, r.out)
	}
}

// uninspectable names a process whose network namespace this one cannot
// read, or "".
func uninspectable() string {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if _, err := os.Readlink(p + "/ns/net"); errors.Is(err, os.ErrPermission) {
			return p
		}
	}
	return ""
}

// runHere runs nodetune in this process's own network namespace.
func runHere(t *testing.T, args ...string) ntRun {
	t.Helper()
	cmd := exec.Command(nodetuneBinary(t), args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return ntRun{out: string(out)}
	case errors.As(err, &ee):
		return ntRun{out: string(out), code: ee.ExitCode()}
	}
	t.Fatalf("nodetune %s: %v\n%s", strings.Join(args, " "), err, out)
	return ntRun{}
}
