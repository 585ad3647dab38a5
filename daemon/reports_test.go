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

// notifyingReports is a report source that says when its reports change.
type notifyingReports struct {
	changed chan struct{}
	mu      chan struct{} // a one-slot lock
	n       int
}

func (s *notifyingReports) ChecksumReports(context.Context) *detect.ChecksumReports {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	out := &detect.ChecksumReports{Node: "n"}
	for range s.n {
		out.Reports = append(out.Reports, detect.ChecksumReport{Receiver: "m", DstPort: 4789, Count: 1})
	}
	return out
}

func (s *notifyingReports) ReportsChanged() <-chan struct{} { return s.changed }

// TestNewReportIsJudgedAtOnce: a report that arrives between full cycles
// is judged at once, on the last snapshot, not at the next full cycle an
// interval later.
func TestNewReportIsJudgedAtOnce(t *testing.T) {
	dir := filepath.Join("..", "testdata", "nodes", "busy-node")
	host, err := probes.NewHost(probes.Paths{ProcFS: filepath.Join(dir, "proc"), SysFS: filepath.Join(dir, "sys"), RootFS: dir}, noLinks{}, noEthtool{})
	if err != nil {
		t.Fatal(err)
	}
	src := &notifyingReports{changed: make(chan struct{}, 1), mu: make(chan struct{}, 1)}
	rec := &recorder{}
	d, err := New(Options{Host: host, Outputs: []Publisher{rec}, Interval: time.Hour, Window: time.Millisecond, Reports: src})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	published := func() (int, int) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.cycles) == 0 {
			return 0, 0
		}
		return len(rec.cycles), len(rec.cycles[len(rec.cycles)-1].Snapshot.UDP.Reported.Reports)
	}
	wait := func(what string, ok func(cycles, reports int) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for c, r := published(); !ok(c, r); c, r = published() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d cycles, the last with %d reports", what, c, r)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait("the first cycle", func(c, r int) bool { return c == 1 && r == 0 })
	src.mu <- struct{}{}
	src.n = 1
	<-src.mu
	src.changed <- struct{}{}
	wait("the new report judged", func(c, r int) bool { return c == 2 && r == 1 })
}
