package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/rules"
)

// TestFlappingFindingLogsOnce: a reverter that switches a setting back and
// forth makes its finding appear and clear every second. serve logs that
// state change once, not each flap; after the finding has stayed away for
// a window, its return is news again.
func TestFlappingFindingLogsOnce(t *testing.T) {
	c := &clock{time.Unix(1e9, 0)}
	d, _ := newTestDaemon(t, nil, c, "")
	var b bytes.Buffer
	d.log = slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo}))
	f := offFinding("vxlan0")
	for range 60 { // a minute of flaps
		d.logChanges([]rules.Finding{f})
		c.advance(500 * time.Millisecond)
		d.logChanges(nil)
		c.advance(500 * time.Millisecond)
	}
	if warn, info := strings.Count(b.String(), "level=WARN"), strings.Count(b.String(), "finding cleared"); warn != 1 || info != 1 {
		t.Errorf("a minute of flaps logged %d warnings and %d clearings at info level, want 1 and 1:\n%s", warn, info, b.String())
	}
	b.Reset()
	c.advance(10 * time.Minute)
	d.logChanges(nil)
	d.logChanges([]rules.Finding{f})
	if strings.Count(b.String(), "level=WARN") != 1 {
		t.Errorf("the finding's return after a quiet window was not logged:\n%s", b.String())
	}
}
