package probestest

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodetune/nodetune/probes"
)

// FixtureTime is when a fixture's second counter sample is taken; the
// first is one second earlier.
var FixtureTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Load returns a Prober over the node captured in dir:
//
//	proc/, sys/, rootfs/        the node's filesystems
//	proc.before/                counters one second earlier (optional;
//	                            without it every rate is zero)
//	netlink/links.json          ip -d -j link show
//	netlink/routes.json         ip -j route show (optional)
//	netlink/routes6.json        ip -6 -j route show (optional)
//	ethtool/DEV.txt             ethtool -k DEV
//	ethtool/DEV.channels.txt    ethtool -l DEV (optional)
//	kube-proxy/proxyMode        kube-proxy's answers (optional; without
//	kube-proxy/metrics          them kube-proxy is not running)
//	capture/packets.txt         UDP packets a capture sees when the
//	                            checksum error counters rise, in hex
//	                            (optional; without it there is no capture)
//	kube-proxy/configz          kube-proxy's /configz (optional)
//
// The Prober's clock is fixed, so a snapshot is the same on every run.
func Load(t testing.TB, dir string) *probes.Prober {
	t.Helper()
	nl, err := LoadNetlink(filepath.Join(dir, "netlink"))
	if err != nil {
		t.Fatalf("loading fixture %s: %v", dir, err)
	}
	open := func(proc string) *probes.Host {
		h, err := probes.NewHost(probes.Paths{
			ProcFS: filepath.Join(dir, proc),
			SysFS:  filepath.Join(dir, "sys"),
			RootFS: filepath.Join(dir, "rootfs"),
		}, nl, Ethtool{Dir: filepath.Join(dir, "ethtool")})
		if err != nil {
			t.Fatalf("loading fixture %s: %v", dir, err)
		}
		h.KubeProxyURL = kubeProxy(t, filepath.Join(dir, "kube-proxy"))
		if peers := filepath.Join(dir, "state", "peers.json"); exists(peers) {
			h.PeerFile = peers
		}
		if c, err := LoadCapture(filepath.Join(dir, "capture", "packets.txt")); err == nil {
			h.Capture = c
		} else if !os.IsNotExist(err) {
			t.Fatalf("loading fixture %s: %v", dir, err)
		}
		return h
	}
	h := open("proc")
	p := probes.NewProber(h)
	before := filepath.Join(dir, "proc.before")
	if _, err := os.Stat(before); err != nil {
		before = filepath.Join(dir, "proc")
	}
	p.Clock = func() time.Time { return FixtureTime.Add(-time.Second) }
	p.Baseline(open(filepath.Base(before)))
	p.Clock = func() time.Time { return FixtureTime }
	return p
}

// kubeProxy serves dir's files as kube-proxy would, or returns "" when the
// fixture has no kube-proxy.
func kubeProxy(t testing.TB, dir string) string {
	if _, err := os.Stat(dir); err != nil {
		return ""
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// exists reports whether the fixture has the file at path.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
