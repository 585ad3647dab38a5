package detect

import (
	"strings"
	"testing"
	"time"
)

var peerNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func offloadPeer(peer, dev string, mtu int, at time.Time, on, off float64) PeerMeasurement {
	return PeerMeasurement{Peer: peer, Device: dev, MTU: mtu, At: at, Cases: []PeerCase{
		{Name: PeerCaseOffloadOn, Direction: PeerSend, BitsPerSecond: on},
		{Name: PeerCaseOffloadOff, Direction: PeerSend, BitsPerSecond: off},
	}}
}

func TestPeerOffloadEvidence(t *testing.T) {
	tun := Tunnel{Name: "vxlan.calico", Kind: KindVXLAN, MTU: 1450}
	recent := peerNow.Add(-time.Hour)
	tests := []struct {
		name    string
		ms      []PeerMeasurement
		ok      bool
		peer    string
		hurts   bool
		whyHas  string
		blocked bool
	}{
		{name: "none", whyHas: "no peer measurement of vxlan.calico"},
		{name: "helps", ms: []PeerMeasurement{offloadPeer("b", "vxlan.calico", 1450, recent, 9e9, 3e9)}, ok: true, peer: "b"},
		{name: "hurts", ms: []PeerMeasurement{offloadPeer("b", "vxlan.calico", 1450, recent, 2e8, 9e9)}, ok: true, peer: "b", hurts: true, blocked: true},
		{name: "within noise", ms: []PeerMeasurement{offloadPeer("b", "vxlan.calico", 1450, recent, 9.5e9, 1e10)}, ok: true, peer: "b"},
		{name: "stale", ms: []PeerMeasurement{offloadPeer("b", "vxlan.calico", 1450, peerNow.Add(-PeerMaxAge-time.Second), 2e8, 9e9)}, whyHas: "older than 6h0m0s"},
		// Dated after the clock (it was ahead when measured, then set
		// back): its age cannot be told, so it counts for nothing.
		{name: "dated in the future", ms: []PeerMeasurement{offloadPeer("b", "vxlan.calico", 1450, peerNow.Add(24*time.Hour), 2e8, 9e9)}, whyHas: "later than this node's clock"},
		{name: "other device", ms: []PeerMeasurement{offloadPeer("b", "flannel.1", 1450, recent, 2e8, 9e9)}, whyHas: `copied device "flannel.1"`},
		{name: "other MTU", ms: []PeerMeasurement{offloadPeer("b", "vxlan.calico", 1500, recent, 2e8, 9e9)}, whyHas: "made at MTU 1500; vxlan.calico is at 1450"},
		{name: "no MTU", ms: []PeerMeasurement{offloadPeer("b", "vxlan.calico", 0, recent, 2e8, 9e9)}, whyHas: "does not record the MTU"},
		{name: "offload cases failed", ms: []PeerMeasurement{{Peer: "b", Device: "vxlan.calico", MTU: 1450, At: recent}}, whyHas: "no offload-on and offload-off rates"},
		// One slow path is enough, even when a newer one to another peer helps.
		{name: "one hurts, a newer helps", ms: []PeerMeasurement{
			offloadPeer("b", "vxlan.calico", 1450, recent, 2e8, 9e9),
			offloadPeer("c", "vxlan.calico", 1450, recent.Add(time.Minute), 9e9, 3e9),
		}, ok: true, peer: "b", hurts: true, blocked: true},
		{name: "newest of two that help", ms: []PeerMeasurement{
			offloadPeer("b", "vxlan.calico", 1450, recent, 9e9, 3e9),
			offloadPeer("c", "vxlan.calico", 1450, recent.Add(time.Minute), 9e9, 4e9),
		}, ok: true, peer: "c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Peers{Measurements: tt.ms}
			o, ok, why := p.OffloadEvidence(tun, peerNow)
			if ok != tt.ok || o.Peer != tt.peer || o.Hurts() != tt.hurts {
				t.Errorf("OffloadEvidence = %+v, %v, %q; want ok %v, peer %q, hurts %v", o, ok, why, tt.ok, tt.peer, tt.hurts)
			}
			if !strings.Contains(why, tt.whyHas) {
				t.Errorf("why = %q; want it to contain %q", why, tt.whyHas)
			}
			if !ok && !strings.Contains(why, "nodetune bench --peer") {
				t.Errorf("why = %q does not say what would settle it", why)
			}
			s := &Snapshot{Taken: peerNow, Tunnels: Tunnels{Devices: []Tunnel{tun}}, Peers: p}
			if got := s.PeerOffloadOnBlocked("vxlan.calico"); (got != "") != tt.blocked {
				t.Errorf("PeerOffloadOnBlocked = %q; want blocked %v", got, tt.blocked)
			}
			if got := s.PeerOffloadOnBlocked("flannel.1"); got != "" {
				t.Errorf("PeerOffloadOnBlocked for a device not on the node = %q", got)
			}
		})
	}
}

func TestOffloadMeasureLoss(t *testing.T) {
	if l := (OffloadMeasure{On: 10e9, Off: 4e9}).Loss(); l < 0.59 || l > 0.61 {
		t.Errorf("Loss = %v; want 0.6", l)
	}
	if l := (OffloadMeasure{On: 2e8, Off: 9e9}).Loss(); l != 0 {
		t.Errorf("Loss when off is faster = %v; want 0", l)
	}
}
