package daemon

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// listKind is a kind of setting outside the host, as a Kubernetes object
// is: a comma-separated key=value list whose order means nothing.
type listKind struct{ values map[tune.Key]string }

func (listKind) Name() string { return "test-list" }
func (listKind) Vet(s *detect.Snapshot, c *tune.Change) tune.Refusal {
	c.From = "A=true"
	return tune.Refusal{}
}
func (l listKind) Read(ctx context.Context, k tune.Key) (tune.Value, error) {
	return tune.Value{Set: l.values[k], Effective: l.values[k]}, nil
}
func (listKind) Writable(ctx context.Context, k tune.Key) error { return nil }
func (l listKind) Write(ctx context.Context, k tune.Key, v string) error {
	l.values[k] = v
	return nil
}
func (listKind) Equal(a, b string) bool {
	x, y := strings.Split(a, ","), strings.Split(b, ",")
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
func (listKind) Command(k tune.Key, v string) string { return "" }
func (listKind) Irreversible() string                { return "" }
func (listKind) PerNetNS() bool                      { return false }
func (listKind) Stepwise() bool                      { return false }

// TestHoldingsCompareAsTune: the daemon tells a revert from a rewrite of
// the same value exactly as tune does, because it asks tune: a sysctl
// rewritten with padding, a list rewritten in another order, are no
// revert; another value is.
func TestHoldingsCompareAsTune(t *testing.T) {
	proc := t.TempDir()
	backlog := filepath.Join(proc, "sys/net/core/netdev_max_backlog")
	if err := os.MkdirAll(filepath.Dir(backlog), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(backlog, []byte("1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	list := tune.Key{Kind: "test-list", Target: "node.a"}
	lk := listKind{values: map[tune.Key]string{list: "A=true"}}
	host := tune.NewHost(proc, t.TempDir(), nil)
	host.More = []tune.Kind{lk}
	tu, err := tune.Open(t.TempDir(), host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tu.Close() })
	r := TuneRemediator{Tuner: tu, System: host}
	s := &detect.Snapshot{Softnet: detect.Softnet{MaxBacklog: 1000, Budget: 300}}
	fix := func(c rules.Change) rules.Finding {
		return rules.Finding{Rule: "r-" + c.Kind, Subject: c.Target, Fix: rules.Fix{Auto: true, Changes: []rules.Change{c}}}
	}
	ctx := context.Background()
	out, _ := r.Apply(ctx, s, []rules.Finding{
		fix(rules.Change{Kind: rules.ChangeSysctl, Target: tune.SysctlMaxBacklog, Value: "2000"}),
		fix(rules.Change{Kind: list.Kind, Target: list.Target, Value: "B=false,A=true"}),
	})
	for _, o := range out {
		if !o.Wrote {
			t.Fatalf("apply: %+v", out)
		}
	}
	undone := func() map[string]bool {
		t.Helper()
		held, err := r.Holdings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, h := range held {
			got[h.Change.Kind] = h.Undone
			if h.Stepwise != (h.Change.Kind == rules.ChangeSysctl) {
				t.Errorf("%s: Stepwise %v", h.Change.Kind, h.Stepwise)
			}
		}
		return got
	}
	// Another writer puts the same values back in another spelling.
	if err := os.WriteFile(backlog, []byte("02000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lk.values[list] = "A=true,B=false"
	if got := undone(); got[rules.ChangeSysctl] || got[list.Kind] {
		t.Errorf("a rewrite of the same values counted as a revert: %v", got)
	}
	if err := os.WriteFile(backlog, []byte("1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lk.values[list] = "A=true"
	if got := undone(); !got[rules.ChangeSysctl] || !got[list.Kind] {
		t.Errorf("a revert went unseen: %v", got)
	}
}
