package testbed_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// roundTrip sends payload from A to B over the given addresses and checks
// that B received it intact.
func roundTrip(t *testing.T, b *testbed.Bed, dst netip.Addr, payload []byte) {
	t.Helper()
	var ln net.Listener
	if err := b.B.Do(func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(dst, 0).String())
		return err
	}); err != nil {
		t.Fatalf("listening in %s: %v", b.B.NS, err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		buf, _ := io.ReadAll(c)
		got <- buf
	}()
	var c net.Conn
	if err := b.A.Do(func() (err error) {
		c, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dialing %s from %s: %v", ln.Addr(), b.A.NS, err)
	}
	if _, err := c.Write(payload); err != nil {
		t.Fatalf("writing to %s: %v", ln.Addr(), err)
	}
	c.Close()
	select {
	case buf := <-got:
		if !bytes.Equal(buf, payload) {
			t.Fatalf("B received %d bytes, want the %d sent", len(buf), len(payload))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("B received nothing within 10s")
	}
}

func TestTCPThroughTunnel(t *testing.T) {
	payload := bytes.Repeat([]byte("nodetune"), 1<<17) // 1 MiB, many full segments
	for _, tc := range []struct {
		opts    testbed.Options
		wantDev string
		wantMTU int
	}{
		{testbed.Options{}, "vxlan0", 1450},
		{testbed.Options{Kind: detect.KindGeneve}, "gnv0", 1450},
		{testbed.Options{Kind: detect.KindIPIP}, "ipip0", 1480},
		{testbed.Options{TunnelName: "vxlan.calico", UnderlayMTU: 9000, TunnelMTU: 8950}, "vxlan.calico", 8950},
		{testbed.Options{TunnelName: "flannel.1", VNI: 1, Port: 8472}, "flannel.1", 1450},
	} {
		t.Run(tc.wantDev, func(t *testing.T) {
			if tc.opts.Kind != "" && !testbedtest.HasKind(t, tc.opts.Kind) {
				return
			}
			b := testbedtest.New(t, tc.opts)
			for _, s := range b.Sides() {
				if _, err := os.Stat(filepath.Join(testbed.NetnsDir, s.NS)); err != nil {
					t.Errorf("namespace %s is not visible to ip netns: %v", s.NS, err)
				}
				l, err := s.Netlink().LinkByName(tc.wantDev)
				if err != nil {
					t.Fatalf("finding %s in %s: %v", tc.wantDev, s.NS, err)
				}
				kind := tc.opts.Kind
				if kind == "" {
					kind = detect.KindVXLAN
				}
				if l.Type() != kind || l.Attrs().MTU != tc.wantMTU {
					t.Errorf("%s in %s is %s with MTU %d, want %s with MTU %d",
						tc.wantDev, s.NS, l.Type(), l.Attrs().MTU, kind, tc.wantMTU)
				}
			}
			roundTrip(t, b, b.B.UnderlayIP, payload)
			roundTrip(t, b, b.B.TunnelIP, payload)
		})
	}
}

func TestFeatureToggle(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	dev := b.A.Tunnel
	if err := b.A.SetFeatures(dev, map[string]bool{detect.FeatureTxChecksumGeneric: false}); err != nil {
		t.Fatal(err)
	}
	f, err := b.A.Features(dev)
	if err != nil {
		t.Fatal(err)
	}
	if f[detect.FeatureTxChecksumGeneric] || f[detect.FeatureTSO] {
		t.Errorf("after turning tx checksumming off: %s=%t %s=%t, want both off (TSO depends on it)",
			detect.FeatureTxChecksumGeneric, f[detect.FeatureTxChecksumGeneric], detect.FeatureTSO, f[detect.FeatureTSO])
	}
	// The other side is its own device and must be untouched.
	fb, err := b.B.Features(dev)
	if err != nil {
		t.Fatal(err)
	}
	if !fb[detect.FeatureTxChecksumGeneric] {
		t.Errorf("B's %s lost %s when only A's was changed", dev, detect.FeatureTxChecksumGeneric)
	}
	if err := b.A.SetFeatures(dev, map[string]bool{detect.FeatureTxChecksumGeneric: true, detect.FeatureTSO: true}); err != nil {
		t.Fatal(err)
	}
	if f, err = b.A.Features(dev); err != nil {
		t.Fatal(err)
	}
	if !f[detect.FeatureTxChecksumGeneric] || !f[detect.FeatureTSO] {
		t.Errorf("after turning them back on: %s=%t %s=%t, want both on",
			detect.FeatureTxChecksumGeneric, f[detect.FeatureTxChecksumGeneric], detect.FeatureTSO, f[detect.FeatureTSO])
	}
	if err := b.A.SetFeatures(dev, map[string]bool{"no-such-feature": true}); err == nil {
		t.Error("SetFeatures accepted an unknown feature name")
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	privtest.Root(t)
	b, err := testbed.New(testbed.Options{Prefix: "ntbclose"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	names := []string{b.A.NS, b.B.NS}
	// A socket held across Close must not keep the namespace's name alive.
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(testbed.NetnsDir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still exists after Close (stat: %v)", n, err)
		}
		if h, err := netns.GetFromName(n); err == nil {
			h.Close()
			t.Errorf("namespace %s can still be opened after Close", n)
		}
	}
	if left, err := testbed.Leftovers("ntbclose"); err != nil || len(left) != 0 {
		t.Errorf("Leftovers after Close = %v, %v; want none", left, err)
	}
	if err := b.A.Do(func() error { return nil }); err == nil {
		t.Error("Do on a closed bed succeeded")
	}
}

func TestNewFailsCleanly(t *testing.T) {
	privtest.Root(t)
	// A VNI wider than 24 bits is refused by the kernel after both
	// namespaces exist; New must remove them again.
	if _, err := testbed.Sweep("ntbfail"); err != nil {
		t.Fatalf("sweeping leftovers of earlier runs: %v", err)
	}
	b, err := testbed.New(testbed.Options{Prefix: "ntbfail", VNI: 1 << 25})
	if err == nil {
		b.Close()
		t.Fatal("New built a VXLAN device with a 26-bit VNI")
	}
	t.Logf("New failed as it should: %v", err)
	if left, lerr := testbed.Leftovers("ntbfail"); lerr != nil || len(left) != 0 {
		t.Errorf("a failed New left %v behind (%v)", left, lerr)
	}
	if _, err := testbed.New(testbed.Options{Kind: "gre"}); !errors.Is(err, detect.ErrNotSupported) {
		t.Errorf("testbed.New(kind gre) = %v, want ErrNotSupported", err)
	}
}

func TestSweepRemovesLeftovers(t *testing.T) {
	privtest.Root(t)
	const prefix = "ntbsweep"
	live := testbedtest.New(t, testbed.Options{Prefix: prefix})
	// A pid that certainly ran and exited: a child we reaped.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatalf("running true: %v", err)
	}
	dead := prefix + "-" + strconv.Itoa(cmd.Process.Pid) + "-1-a"
	if err := testbed.OnThread(func() error {
		h, err := netns.NewNamed(dead)
		if err == nil {
			h.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("making a leftover namespace: %v", err)
	}
	t.Cleanup(func() { testbed.DeleteNamed(dead) })
	removed, err := testbed.Sweep(prefix)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if len(removed) != 1 || removed[0] != dead {
		t.Errorf("Sweep removed %v, want just %s", removed, dead)
	}
	if _, err := os.Stat(filepath.Join(testbed.NetnsDir, dead)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover %s survived Sweep (stat: %v)", dead, err)
	}
	for _, s := range live.Sides() {
		if _, err := os.Stat(filepath.Join(testbed.NetnsDir, s.NS)); err != nil {
			t.Errorf("Sweep removed %s of a live process: %v", s.NS, err)
		}
	}
}
