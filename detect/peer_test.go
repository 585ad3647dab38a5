package detect

import (
	"errors"
	"testing"
)

func TestPeerMeasurementOffloadEffect(t *testing.T) {
	m := PeerMeasurement{Cases: []PeerCase{
		{Name: PeerCaseOffloadOn, Direction: PeerReceive, BitsPerSecond: 9e9},
		{Name: PeerCaseOffloadOn, Direction: PeerSend, BitsPerSecond: 2e8},
		{Name: PeerCaseOffloadOff, Direction: PeerSend, BitsPerSecond: 6e9},
	}}
	on, off, ok := m.OffloadEffect()
	if !ok || on != 2e8 || off != 6e9 {
		t.Errorf("OffloadEffect() = %v, %v, %v; want the send direction: 2e8, 6e9, true", on, off, ok)
	}
	m.Cases[2].Err = Fail(errors.New("peer refused"))
	if _, _, ok := m.OffloadEffect(); ok {
		t.Error("OffloadEffect() is ok with a failed offload-off case")
	}
}

func TestIsPeerTunnel(t *testing.T) {
	for name, want := range map[string]bool{
		"ntpr-123": true, "ntpm-7": true, "ntpr-": false, "ntpr-01": false, "ntpr-12a": false,
		"ntpx-12": false, "vxlan.calico": false, "ntpm--3": false,
	} {
		if got := IsPeerTunnel(name); got != want {
			t.Errorf("IsPeerTunnel(%q) = %t, want %t", name, got, want)
		}
	}
}

func TestRate(t *testing.T) {
	for bps, want := range map[float64]string{
		36.5e9: "36.5 Gbit/s", 1e9: "1.0 Gbit/s", 940e6: "940 Mbit/s", 12.4e3: "12 kbit/s", 12: "12 bit/s", 0: "0 bit/s",
	} {
		if got := Rate(bps); got != want {
			t.Errorf("Rate(%g) = %q, want %q", bps, got, want)
		}
	}
}
