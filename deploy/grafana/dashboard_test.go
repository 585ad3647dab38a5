// Package grafana_test checks nodetune's shipped Grafana dashboard: that it
// is valid JSON, that its queries parse as PromQL, and that every metric
// they read is one nodetune exports.
package grafana_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nodetune/nodetune/exporter"
	"github.com/nodetune/nodetune/internal/privtest"
)

const dashboardFile = "nodetune-dashboard.json"

type target struct {
	Expr  string `json:"expr"`
	RefID string `json:"refId"`
}

type panel struct {
	ID         int      `json:"id"`
	Type       string   `json:"type"`
	Title      string   `json:"title"`
	Targets    []target `json:"targets"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
}

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func load(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("%s has no title, uid or panels", dashboardFile)
	}
	return d
}

// queries returns every PromQL expression in d: panel targets and the
// template variables' label_values queries.
func queries(t *testing.T, d dashboard) []string {
	t.Helper()
	var out []string
	ids := map[int]string{}
	for _, p := range d.Panels {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q has no usable gridPos", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the $datasource variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q query %s is empty", p.Title, q.RefID)
			}
			out = append(out, q.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			if s, ok := q["query"].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// metricName matches the metric names the dashboard may read: nodetune's
// own and the process and Go runtime metrics its registry adds.
var metricName = regexp.MustCompile(`\b(?:nodetune|process|go)_[a-z_]+\b`)

func TestDashboardReadsOnlyExportedMetrics(t *testing.T) {
	d := load(t)
	known := map[string]bool{}
	for _, n := range exporter.MetricNames() {
		known[n] = true
	}
	families, err := exporter.New("test").Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		known[mf.GetName()] = true
	}
	used := 0
	for _, q := range queries(t, d) {
		for _, m := range metricName.FindAllString(q, -1) {
			used++
			if !known[m] {
				t.Errorf("the dashboard reads %s, which nodetune does not export (query %q)", m, q)
			}
		}
	}
	if used < 20 {
		t.Errorf("found only %d metric references; the dashboard or the pattern is broken", used)
	}
}

// TestDashboardQueriesParse has promtool parse every query, with the
// dashboard's variables replaced, as the expression of a recording rule.
func TestDashboardQueriesParse(t *testing.T) {
	promtool := privtest.Tool(t, "promtool")
	d := load(t)
	vars := strings.NewReplacer(`$__rate_interval`, `5m`, `$instance`, `.+`, `$job`, `.+`)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, q := range queries(t, d) {
		q = vars.Replace(q)
		if strings.HasPrefix(q, "label_values(") {
			// label_values(SELECTOR, label) is Grafana's; the selector is PromQL.
			q = strings.TrimPrefix(q, "label_values(")
			q = q[:strings.LastIndex(q, ",")]
		}
		expr, err := json.Marshal(q)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "      - record: dashboard:query%d\n        expr: %s\n", i, expr)
	}
	file := filepath.Join(t.TempDir(), "queries.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("a dashboard query does not parse: %v\n%s", err, out)
	}
}
