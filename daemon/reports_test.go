package daemon

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/probes"
)

// slowReports answers after delay, or says the deadline passed first.
type slowReports struct{ delay time.Duration }

func (s slowReports) ChecksumReports(ctx context.Context) *detect.ChecksumReports {
	select {
	case <-time.After(s.delay):
		return &detect.ChecksumReports{Node: "n", Reports: []detect.ChecksumReport{{Receiver: "m", DstPort: 4789, Count: 1}}}
	case <-ctx.Done():
		return &detect.ChecksumReports{Node: "n", Err: detect.Fail(ctx.Err())}
	}
}

// TestCycleCarriesReports: each full cycle's snapshot carries what the
// report source said, for the rules to judge; a source slower than the
// interval makes the reports unknown rather than the cycle late.
func TestCycleCarriesReports(t *testing.T) {
	dir := filepath.Join("..", "testdata", "nodes", "busy-node")
	host, err := probes.NewHost(probes.Paths{ProcFS: filepath.Join(dir, "proc"), SysFS: filepath.Join(dir, "sys"), RootFS: dir}, noLinks{}, noEthtool{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		delay   time.Duration
		wantErr bool
	}{{"answers", 0, false}, {"too slow", time.Minute, true}} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			d, err := New(Options{Host: host, Outputs: []Publisher{rec}, Interval: 200 * time.Millisecond,
				Window: time.Millisecond, Reports: slowReports{tt.delay}})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := d.fullCycle(context.Background()); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("the cycle took %s", took)
			}
			r := rec.cycles[0].Snapshot.UDP.Reported
			if r == nil {
				t.Fatal("the snapshot carries no reports")
			}
			if got := r.Err.Failed(); got != tt.wantErr || !tt.wantErr && len(r.Reports) != 1 {
				t.Errorf("reports %+v", r)
			}
			if tt.wantErr && !errors.Is(r.Err, context.DeadlineExceeded) {
				t.Errorf("err %v, want the deadline", r.Err)
			}
		})
	}
}
