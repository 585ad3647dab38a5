// Package prometheus_test checks nodetune's shipped Prometheus alerting
// rules with promtool, and that they only read metrics nodetune exports.
package prometheus_test

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"

	"github.com/nodetune/nodetune/exporter"
	"github.com/nodetune/nodetune/internal/privtest"
)

const (
	rulesFile = "nodetune-alerts.yaml"
	testsFile = "nodetune-alerts.test.yaml"
)

func promtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(privtest.Tool(t, "promtool"), args...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool %v: %v\n%s", args, err, out)
	}
}

func TestCheckRules(t *testing.T) { promtool(t, "check", "rules", rulesFile) }

func TestRuleUnitTests(t *testing.T) { promtool(t, "test", "rules", testsFile) }

// nodetuneMetric matches a nodetune metric name in an expression.
var nodetuneMetric = regexp.MustCompile(`\bnodetune_[a-z_]+\b`)

// TestRulesUseExportedMetrics fails on an alert that reads a metric the
// exporter does not emit: such an alert could never fire.
func TestRulesUseExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	known := exporter.MetricNames()
	used := nodetuneMetric.FindAllString(string(b), -1)
	if len(used) < 10 {
		t.Fatalf("found only %d metric references in %s; the pattern is broken", len(used), rulesFile)
	}
	for _, m := range used {
		if !slices.Contains(known, m) {
			t.Errorf("%s uses %s, which nodetune does not export", rulesFile, m)
		}
	}
}
