package tune

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// offloadOn turns tx checksum offload on on side s's tunnel through a
// Tuner whose host identifies devices through s's netlink, as nodetune fix
// does, and returns the Tuner and its Host.
func offloadOn(t *testing.T, s *testbed.Side, dir string) (*Tuner, *Host) {
	t.Helper()
	if err := s.Ethtool().Change(s.Tunnel, map[string]bool{detect.FeatureTxChecksumGeneric: false}); err != nil {
		t.Fatal(err)
	}
	h := NewHost("/proc", "/sys", s.Ethtool())
	h.Links = s.Netlink()
	snap := bedSnapshot(t, s)
	p := Propose(snap, []rules.Finding{finding(rules.Change{Kind: rules.ChangeFeature, Target: s.Tunnel, Setting: detect.FeatureTxChecksumGeneric, Value: on})}, PlanOptions{})
	tu := openTuner(t, dir, h)
	if out := tu.applyProposed(context.Background(), p); len(out) == 0 || out[0].Result != Verified {
		t.Fatalf("apply: %v", out)
	}
	return tu, h
}

// addVXLAN creates a VXLAN device called name over s's underlay, with tx
// checksum offload on (the kernel's default), as a CNI that restarts does.
func addVXLAN(t *testing.T, s *testbed.Side, name string, vni int) {
	t.Helper()
	under, err := s.Netlink().LinkByName(s.Underlay)
	if err != nil {
		t.Fatal(err)
	}
	l := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: name}, VxlanId: vni, VtepDevIndex: under.Attrs().Index, Port: 4789}
	if err := s.Netlink().LinkAdd(l); err != nil {
		t.Fatalf("adding vxlan %q: %v", name, err)
	}
}

func delLink(t *testing.T, s *testbed.Side, name string) {
	t.Helper()
	l, err := s.Netlink().LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Netlink().LinkDel(l); err != nil {
		t.Fatal(err)
	}
}

func txCsum(t *testing.T, s *testbed.Side, dev string) bool {
	t.Helper()
	f, err := s.Ethtool().FeaturesWithState(dev)
	if err != nil {
		t.Fatal(err)
	}
	return f[detect.FeatureTxChecksumGeneric].Active
}

// TestRecreatedDeviceIsGone: after fix turned offload on, the tunnel is
// deleted and another with the same name, kind, VNI and port is created
// (a CNI restart). Rollback must not write the old value onto the new
// device: the entry closes as gone, and the journal keeps it.
func TestRecreatedDeviceIsGone(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	dir := t.TempDir()
	tu, _ := offloadOn(t, a, dir)
	delLink(t, a, a.Tunnel)
	addVXLAN(t, a, a.Tunnel, 42)
	if !txCsum(t, a, a.Tunnel) {
		t.Fatal("the new device starts with offload off")
	}
	ctx := context.Background()
	dry := tu.Rollback(ctx, true)
	if len(dry) != 1 || dry[0].Result != Gone || dry[0].Command != "" {
		t.Fatalf("dry run: %v", dry)
	}
	out := tu.Rollback(ctx, false)
	if len(out) != 1 || out[0].Result != Gone || !out[0].Ok() || !errors.Is(out[0].Err, ErrGone) || !strings.Contains(out[0].Err.Error(), "another one") {
		t.Fatalf("rollback: %v", out)
	}
	if !txCsum(t, a, a.Tunnel) {
		t.Error("rollback wrote the old device's value onto the new device")
	}
	if e := entries(t, dir); len(e) != 1 || e[0].State != evGone || e[0].Device == nil || e[0].Device.Kind != detect.KindVXLAN || e[0].Device.VNI != 42 {
		t.Errorf("journal: %+v", e)
	}
	if again := tu.Rollback(ctx, false); len(again) != 0 {
		t.Errorf("second rollback: %v", again)
	}
}

// TestDeletedDeviceIsGone: the tunnel is deleted and nothing takes its
// name: the entry closes as gone.
func TestDeletedDeviceIsGone(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	tu, _ := offloadOn(t, a, t.TempDir())
	delLink(t, a, a.Tunnel)
	out := tu.Rollback(context.Background(), false)
	if len(out) != 1 || out[0].Result != Gone || !strings.Contains(out[0].Err.Error(), "was deleted") {
		t.Fatalf("rollback: %v", out)
	}
}

// TestRenamedDeviceIsFollowed: the tunnel is renamed (vxlan0 -> vx9) and a
// new device takes the old name. Rollback restores the renamed device,
// which is the one nodetune changed, and leaves the new vxlan0 alone.
func TestRenamedDeviceIsFollowed(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	tu, _ := offloadOn(t, a, t.TempDir())
	l, err := a.Netlink().LinkByName(a.Tunnel)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Netlink().LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	if err := a.Netlink().LinkSetName(l, "vx9"); err != nil {
		t.Fatal(err)
	}
	addVXLAN(t, a, a.Tunnel, 43) // the kernel keeps VNI 42 on port 4789 for vx9
	ctx := context.Background()
	dry := tu.Rollback(ctx, true)
	if len(dry) != 1 || dry[0].Result != Planned || !strings.Contains(dry[0].Command, "ethtool -K vx9 ") || !strings.Contains(dry[0].Note, "now named vx9") {
		t.Fatalf("dry run: %+v", dry)
	}
	out := tu.Rollback(ctx, false)
	if len(out) != 1 || out[0].Result != Restored || !strings.Contains(out[0].Note, "now named vx9") {
		t.Fatalf("rollback: %v", out)
	}
	if txCsum(t, a, "vx9") {
		t.Error("the renamed device did not get its original value back")
	}
	if !txCsum(t, a, a.Tunnel) {
		t.Error("rollback wrote onto the new device that took the old name")
	}
}

// TestNameThatIsNotUTF8: a device name is bytes. Its entry keeps them
// (target_b64), a later process reads them back, and rollback restores
// the device.
func TestNameThatIsNotUTF8(t *testing.T) {
	name := "vx\xff\x1b"
	b := testbedtest.New(t, testbed.Options{TunnelName: name})
	a := b.A
	dir := t.TempDir()
	tu, h := offloadOn(t, a, dir)
	tu.Close()
	raw, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"target_b64":"dnj/Gw=="`) || !strings.Contains(string(raw), `vx\\xff\\x1b`) {
		t.Errorf("the journal does not hold the name's bytes and its escaped form:\n%s", raw)
	}
	tu = openTuner(t, dir, h)
	if e := tu.Entries(); len(e) != 1 || e[0].Key.Target != name {
		t.Fatalf("entries read back: %+v", e)
	}
	out := tu.Rollback(context.Background(), false)
	if len(out) != 1 || out[0].Result != Restored {
		t.Fatalf("rollback: %v", out)
	}
	if strings.Contains(out[0].String(), "\x1b") || !strings.Contains(out[0].String(), `vx\xff\x1b`) {
		t.Errorf("the outcome does not show the name escaped: %q", out[0].String())
	}
	if txCsum(t, a, name) {
		t.Error("offload is still on")
	}
}

// TestNetNSAliveOnTheRealKernel: a namespace held only by its bind mount
// (/run/netns/NAME) or only by an open descriptor is alive; once nothing
// holds it, it is not, or, where some process cannot be inspected, that
// cannot be told.
func TestNetNSAliveOnTheRealKernel(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	h := NewHost("/proc", "/sys", nil)
	ctx := context.Background()
	mount := filepath.Join("/run/netns", b.A.NS)
	fi, err := os.Stat("/proc/self/fd/" + openFd(t, mount))
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("net:[%d]", fi.Sys().(*syscall.Stat_t).Ino)
	if alive, err := h.NetNSAlive(ctx, id); !alive {
		t.Fatalf("a namespace held by its mount and a descriptor: alive %t, %v", alive, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if alive, err := h.NetNSAlive(ctx, id); !alive {
		t.Fatalf("a namespace held by a descriptor: alive %t, %v", alive, err)
	}
	closeFds(t)
	if alive, err := h.NetNSAlive(ctx, id); alive {
		t.Errorf("a namespace nothing holds is alive (%v)", err)
	} else if err != nil {
		t.Logf("whether %s still exists cannot be told here: %v", id, err)
	}
}

var heldFds []*os.File

func openFd(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	heldFds = append(heldFds, f)
	t.Cleanup(func() { closeFds(t) })
	return strconv.Itoa(int(f.Fd()))
}

func closeFds(t *testing.T) {
	for _, f := range heldFds {
		f.Close()
	}
	heldFds = nil
}

// TestDeletedDeviceOfAnEntryWithoutIdentityIsGone: an entry made without a
// device identity (a version 1 journal, written before identities were
// recorded) whose device no longer exists under its name can never be
// restored by that name: it closes as gone, saying so, instead of failing
// every rollback for ever.
func TestDeletedDeviceOfAnEntryWithoutIdentityIsGone(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	dir := t.TempDir()
	if err := a.Ethtool().Change(a.Tunnel, map[string]bool{detect.FeatureTxChecksumGeneric: false}); err != nil {
		t.Fatal(err)
	}
	byName := NewHost("/proc", "/sys", a.Ethtool()) // no netlink: no identity
	p := Propose(bedSnapshot(t, a), []rules.Finding{finding(rules.Change{Kind: rules.ChangeFeature, Target: a.Tunnel, Setting: detect.FeatureTxChecksumGeneric, Value: on})}, PlanOptions{})
	tu, err := Open(dir, byName)
	if err != nil {
		t.Fatal(err)
	}
	if out := tu.applyProposed(context.Background(), p); len(out) == 0 || out[0].Result != Verified {
		t.Fatalf("apply: %v", out)
	}
	tu.Close()
	if e := entries(t, dir); len(e) != 1 || e[0].Device != nil {
		t.Fatalf("journal: %+v", e)
	}
	delLink(t, a, a.Tunnel)
	h := NewHost("/proc", "/sys", a.Ethtool())
	h.Links = a.Netlink()
	tu = openTuner(t, dir, h)
	ctx := context.Background()
	if dry := tu.Rollback(ctx, true); len(dry) != 1 || dry[0].Result != Gone {
		t.Fatalf("dry run: %v", dry)
	}
	out := tu.Rollback(ctx, false)
	if len(out) != 1 || out[0].Result != Gone || !errors.Is(out[0].Err, ErrGone) || !strings.Contains(out[0].Err.Error(), "no device is named") {
		t.Fatalf("rollback: %v", out)
	}
	if again := tu.Rollback(ctx, false); len(again) != 0 {
		t.Errorf("second rollback: %v", again)
	}
}

// TestNewChangeClosesTheGoneDevicesEntry: serve --mode remediate fixes a
// tunnel, the CNI creates it again, and serve fixes the new one. The entry
// of the old device, whose original went with it, is closed as gone when
// the new one is made, so CNI restarts do not pile up open entries.
func TestNewChangeClosesTheGoneDevicesEntry(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	dir := t.TempDir()
	tu, _ := offloadOn(t, a, dir)
	delLink(t, a, a.Tunnel)
	addVXLAN(t, a, a.Tunnel, 42)
	if err := a.Ethtool().Change(a.Tunnel, map[string]bool{detect.FeatureTxChecksumGeneric: false}); err != nil {
		t.Fatal(err)
	}
	p := Propose(bedSnapshot(t, a), []rules.Finding{finding(rules.Change{Kind: rules.ChangeFeature, Target: a.Tunnel, Setting: detect.FeatureTxChecksumGeneric, Value: on})}, PlanOptions{})
	if out := tu.applyProposed(context.Background(), p); len(out) == 0 || out[0].Result != Verified {
		t.Fatalf("apply on the new device: %v", out)
	}
	open := tu.Entries()
	if len(open) != 1 {
		t.Fatalf("open entries after the new device's fix: %+v", open)
	}
	e := entries(t, dir)
	if len(e) != 2 || e[0].State != evGone || e[1].State != evVerified {
		t.Errorf("journal: %+v", e)
	}
}
