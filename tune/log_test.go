package tune

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// logLines captures what tu logs at info level and above.
func logLines(tu *Tuner) *bytes.Buffer {
	var b bytes.Buffer
	tu.log = slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return &b
}

// TestDryRunLogsNothingDone: rollback --dry-run writes nothing, so it must
// not log that it closed or restored anything.
func TestDryRunLogsNothingDone(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	dir := t.TempDir()
	tu := openTuner(t, dir, n.host)
	s := n.snapshot(t)
	s.Softnet.Delta.TimeSqueezed = 5
	if out := tu.applyProposed(ctx, Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.SoftnetDrops}})); len(out) != 1 || out[0].Result != Verified {
		t.Fatalf("apply: %v", out)
	}
	tu.Close()
	ro, err := OpenReadOnly(dir, n.host)
	if err != nil {
		t.Fatal(err)
	}
	logs := logLines(ro)
	if out := ro.Rollback(ctx, true); len(out) != 1 || out[0].Result != Planned {
		t.Fatalf("dry run: %v", out)
	}
	// The setting is back at its original: the dry run would close it.
	if err := os.WriteFile(filepath.Join(n.proc, "sys/net/core/netdev_budget"), []byte("300\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := ro.Rollback(ctx, true); len(out) != 1 || out[0].Result != Closed {
		t.Fatalf("dry run: %v", out)
	}
	if logs.Len() != 0 {
		t.Errorf("a dry run logged at info level or above:\n%s", logs)
	}
}

// TestRepeatedRefusalLogsOnce: a change refused (or failing) the same way
// every cycle is logged as a warning once, not on every cycle; a new
// outcome for the setting is logged again.
func TestRepeatedRefusalLogsOnce(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	tu := openTuner(t, t.TempDir(), n.host)
	logs := logLines(tu)
	n.et.setRequested(t, "vxlan0", map[string]bool{detect.FeatureTxChecksumGeneric: false})
	s := n.snapshot(t)
	f := finding(rules.Change{Kind: rules.ChangeFeature, Target: "vxlan0", Setting: detect.FeatureTxChecksumGeneric, Value: on})
	f.Owner = &detect.Owner{Name: "calico-felix", Why: "Felix keeps it off", DurableFix: "featureDetectOverride"}
	for range 10 {
		if out := tu.applyProposed(ctx, Propose(s, []rules.Finding{f}, PlanOptions{})); len(out) != 1 || out[0].Result != Refused {
			t.Fatalf("apply: %v", out)
		}
	}
	if got := strings.Count(logs.String(), "level=WARN"); got != 1 {
		t.Errorf("%d warnings for one refusal repeated 10 times, want 1:\n%s", got, logs)
	}
	logs.Reset()
	if out := tu.applyProposed(ctx, Propose(s, []rules.Finding{f}, PlanOptions{Force: true})); len(out) == 0 || out[0].Result != Verified {
		t.Fatalf("apply with force: %v", out)
	}
	if !strings.Contains(logs.String(), "change verified") {
		t.Errorf("the change that followed the refusals was not logged:\n%s", logs)
	}
}
