package main

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/detect"
)

// TestChecksumHookCountsACaptureOnce: the daemon concludes again on the
// same snapshot after a link change or a new report; its capture is
// queued for the Events once, and a cycle without tunnel sources is
// queued empty (it flushes held-back counts). A full queue drops a cycle
// rather than block the loop.
func TestChecksumHookCountsACaptureOnce(t *testing.T) {
	h := &checksumHook{log: slog.New(slog.DiscardHandler), queue: make(chan csumWindow, csumQueue)}
	capture := &detect.ChecksumCapture{TunnelBad: 3, Sources: []detect.BadChecksumSource{
		{Addr: netip.MustParseAddr("10.0.0.1"), DstPort: 4789, Tunnel: "vxlan0", Count: 3},
		{Addr: netip.MustParseAddr("10.0.0.2"), DstPort: 53, Count: 1},
	}}
	taken := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s := &detect.Snapshot{Taken: taken, Window: time.Second, UDP: detect.UDP{Delta: 4, Capture: capture}}
	again := *s
	again.Taken = taken.Add(time.Second)
	quiet := &detect.Snapshot{Taken: taken.Add(2 * time.Second), Window: time.Second}
	for _, snap := range []*detect.Snapshot{s, &again, quiet} {
		h.Publish(&daemon.Cycle{Snapshot: snap})
	}
	var got []int
	for range 3 {
		w := <-h.queue
		got = append(got, len(w.sources))
	}
	if got[0] != 1 || got[1] != 0 || got[2] != 0 {
		t.Errorf("sources queued per cycle %v, want [1 0 0]: the tunnel source once", got)
	}
	for range csumQueue + 2 {
		h.Publish(&daemon.Cycle{Snapshot: quiet}) // must not block
	}
}
