package report

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// TestUDPLinesSayWhatTheCaptureSaw: a rise left unattributed by a capture
// that saw some bad packets, but fewer than the kernel counted meanwhile,
// names what it saw and how many it missed, not "saw none".
func TestUDPLinesSayWhatTheCaptureSaw(t *testing.T) {
	s := &detect.Snapshot{Window: time.Second, Kernel: detect.Kernel{Release: "6.1.0"}}
	s.UDP = detect.UDP{Delta: 50, InCsumErrors: 50, Err6: detect.Fail(detect.ErrNotSupported), Capture: &detect.ChecksumCapture{
		Duration: time.Second, Inspected: 90, OtherBad: 3, CounterDelta: 40,
		Sources: []detect.BadChecksumSource{{Addr: netip.MustParseAddr("198.51.100.9"), Port: 5353, DstPort: 9999, Count: 3}},
	}}
	var out bytes.Buffer
	if err := WriteText(&out, Build("test", s, rules.Result{}), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"unattributed", "3 of the 40", "198.51.100.9:5353 -> :9999"} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in:\n%s", want, text)
		}
	}
	if strings.Contains(text, "saw none") {
		t.Errorf("says the capture saw none:\n%s", text)
	}
}
