package detect

import "testing"

// TestChecksumVerdictCoversTheCountedRise: a capture that saw bad packets
// only to other ports explains the rise only when they cover what the
// kernel counted while it ran; errors counted but not seen may be tunnel
// packets, so the rise stays unattributed.
func TestChecksumVerdictCoversTheCountedRise(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    ChecksumCapture
		want Attribution
	}{
		{"all counted errors seen", ChecksumCapture{OtherBad: 40, CounterDelta: 40}, AttrOther},
		{"more seen than counted (not delivered here)", ChecksumCapture{OtherBad: 3, CounterDelta: 1}, AttrOther},
		{"most counted errors unseen", ChecksumCapture{OtherBad: 2, CounterDelta: 40}, AttrUnattributed},
		{"tunnel packets seen", ChecksumCapture{TunnelBad: 1, OtherBad: 2, CounterDelta: 40}, AttrTunnel},
		{"none seen", ChecksumCapture{CounterDelta: 4}, AttrUnattributed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			u := UDP{Delta: 7, Capture: &c}
			if got := u.ChecksumVerdict(); got != tt.want {
				t.Errorf("verdict %s, want %s", got, tt.want)
			}
		})
	}
}
