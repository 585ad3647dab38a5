package main

import (
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
