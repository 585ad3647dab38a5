package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/probes"
)

// veths is how many veth pairs the probe cycle benchmark puts in its
// namespace: a busy node's pod interfaces.
const veths = 1000

// benchHost builds a throwaway namespace with veths veth pairs and one
// VXLAN device, and returns a probes.Host whose netlink and ethtool handles
// live in it, listing links by kind when filtered is set (as nodetune serve
// does) or with full dumps. Everything is removed when b ends.
func benchHost(b *testing.B, filtered bool) *probes.Host {
	b.Helper()
	privtest.Root(b)
	ns := fmt.Sprintf("ntprobebench-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add: %v: %s", err, out)
	}
	b.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	var batch strings.Builder
	for i := range veths {
		fmt.Fprintf(&batch, "link add v%d type veth peer name p%d\n", i, i)
	}
	batch.WriteString("link add vxlan0 type vxlan id 42 dstport 4789 local 127.0.0.1\nlink set vxlan0 up\nlink set lo up\n")
	file := filepath.Join(b.TempDir(), "batch")
	if err := os.WriteFile(file, []byte(batch.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("ip", "-n", ns, "-batch", file).CombinedOutput(); err != nil {
		b.Fatalf("creating %d veth pairs: %v: %s", veths, err, out)
	}
	h, err := netns.GetFromName(ns)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	var nl probes.Netlink
	if filtered {
		fnl, err := probes.NewNetlink(h)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(fnl.Close)
		nl = fnl
	} else {
		plain, err := netlink.NewHandleAt(h)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(plain.Close)
		nl = plain
	}
	host, err := probes.NewHost(probes.DefaultPaths, nl, ethtoolIn(b, h))
	if err != nil {
		b.Fatal(err)
	}
	host.KubeProxyURL = ""
	links, err := nl.LinkList()
	if err != nil || len(links) < 2*veths {
		b.Fatalf("namespace has %d links (%v), want %d", len(links), err, 2*veths+2)
	}
	return host
}

// ethtoolIn opens an ethtool socket inside ns.
func ethtoolIn(b *testing.B, ns netns.NsHandle) *ethtool.Ethtool {
	b.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		b.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		b.Fatal(err)
	}
	et, err := ethtool.NewEthtool()
	if serr := netns.Set(orig); serr != nil {
		panic(fmt.Sprintf("cannot return to the original network namespace: %v", serr))
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(et.Close)
	return et
}

// seams are the two ways the probes can list links.
var seams = []struct {
	name     string
	filtered bool
}{{"by-kind", true}, {"full-dump", false}}

// BenchmarkProbeCycle1000Links is one full probe cycle (every probe, the
// counters included) on a namespace with 1,000 veth pairs and a VXLAN
// device. Goal: under 50 ms.
func BenchmarkProbeCycle1000Links(b *testing.B) {
	for _, seam := range seams {
		b.Run(seam.name, func(b *testing.B) {
			p := probes.NewProber(benchHost(b, seam.filtered))
			ctx := context.Background()
			if _, err := p.Snapshot(ctx, time.Millisecond); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				s, err := p.Snapshot(ctx, time.Millisecond)
				if err != nil {
					b.Fatal(err)
				}
				if len(s.Tunnels.Devices) != 1 {
					b.Fatalf("found %d tunnels, want the one VXLAN device", len(s.Tunnels.Devices))
				}
			}
		})
	}
}

// BenchmarkTunnelsProbe1000Links is the quick cycle a link notification
// triggers: the tunnels probe alone, among 1,000 veth pairs.
func BenchmarkTunnelsProbe1000Links(b *testing.B) {
	for _, seam := range seams {
		b.Run(seam.name, func(b *testing.B) {
			host := benchHost(b, seam.filtered)
			for b.Loop() {
				if t := host.Tunnels(); t.Err.Failed() || len(t.Devices) != 1 {
					b.Fatalf("tunnels probe: %v, %d devices", t.Err, len(t.Devices))
				}
			}
		})
	}
}
