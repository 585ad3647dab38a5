package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
)

func TestRetryDelay(t *testing.T) {
	p := Backoff{Max: 3, Window: 8 * time.Minute}
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, p.retryDelay(n))
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 8 * time.Minute, 8 * time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("retryDelay(%d) = %s, want %s", i+1, got[i], want[i])
		}
	}
}

// TestRemediateBacksOffFailures: a fix that always fails (no
// CAP_NET_ADMIN) is not tried on every cycle: each failure doubles the
// wait, up to the window, across a restart too; a success ends it.
func TestRemediateBacksOffFailures(t *testing.T) {
	c := &clock{time.Unix(1e9, 0)}
	h := newFakeHost(c.now)
	h.set(offloadChange, "off")
	h.results = []string{"failed"}
	state := filepath.Join(t.TempDir(), BackoffFile)
	d, _ := newTestDaemon(t, h, c, state)
	s := &detect.Snapshot{}
	for range 20 { // 10 minutes of 30 s cycles
		d.remediate(context.Background(), s, offloadOff(h, nil))
		c.advance(30 * time.Second)
	}
	// Tries at 0, 90 s (after 75 s), 240 s (after 150 s), 540 s (300 s);
	// the next waits 600 s.
	if len(h.applied) != 4 {
		t.Errorf("a failing fix was tried %d times in 10 minutes of 30 s cycles, want 4", len(h.applied))
	}
	b, err := os.ReadFile(state)
	if err != nil || !strings.Contains(string(b), `"failing"`) {
		t.Fatalf("the back-off state does not keep the failures: %s, %v", b, err)
	}
	// A restarted agent keeps waiting.
	d, _ = newTestDaemon(t, h, c, state)
	d.remediate(context.Background(), s, offloadOff(h, nil))
	if len(h.applied) != 4 {
		t.Errorf("a restarted agent tried the failing fix at once")
	}
	c.advance(10 * time.Minute)
	h.results = []string{"verified"}
	d.remediate(context.Background(), s, offloadOff(h, nil))
	if len(h.applied) != 5 || h.get(offloadChange) != "on" {
		t.Fatalf("the fix was not tried after the window: %d tries, offload %s", len(h.applied), h.get(offloadChange))
	}
	if len(d.conflicts.failing) != 0 {
		t.Errorf("a success did not end the back-off: %+v", d.conflicts.failing)
	}
}
