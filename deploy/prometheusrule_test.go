package deploy_test

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "regenerate components/prometheus-operator/prometheusrule.yaml from the alerting rules")

const (
	alertsFile = "prometheus/nodetune-alerts.yaml"
	ruleFile   = "components/prometheus-operator/prometheusrule.yaml"
)

const ruleHeader = `# Generated from deploy/prometheus/nodetune-alerts.yaml, the one source of
# nodetune's alerting rules, by
#   go test ./deploy -run TestPrometheusRule -update
# Edit the rules there and regenerate; a test fails while the two differ.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: nodetune
  namespace: nodetune
  labels:
    app.kubernetes.io/name: nodetune
spec:
`

// prometheusRule wraps the alerting rules file in a PrometheusRule: its
// groups, from the "groups:" line on, indented under spec. Indenting every
// line alike keeps the YAML's meaning, block scalars included, and keeps
// the comments.
func prometheusRule(alerts []byte) ([]byte, bool) {
	i := bytes.Index(alerts, []byte("\ngroups:"))
	if i < 0 {
		return nil, false
	}
	var b strings.Builder
	b.WriteString(ruleHeader)
	for line := range strings.SplitSeq(strings.TrimRight(string(alerts[i+1:]), "\n"), "\n") {
		if line != "" {
			b.WriteString("  ")
		}
		b.WriteString(line)
		b.WriteString("\n")
	}
	return []byte(b.String()), true
}

// TestPrometheusRule checks the Prometheus Operator component carries
// exactly the shipped alerting rules: the file is the generated one, and
// its spec decodes to the same groups as the rules file.
func TestPrometheusRule(t *testing.T) {
	alerts, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	want, ok := prometheusRule(alerts)
	if !ok {
		t.Fatalf("%s has no top-level groups:", alertsFile)
	}
	if *update {
		if err := os.WriteFile(ruleFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with %s; run: go test ./deploy -run TestPrometheusRule -update", ruleFile, alertsFile)
	}
	var src struct {
		Groups []any `json:"groups"`
	}
	var rule struct {
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(alerts, &src); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(got, &rule); err != nil {
		t.Fatal(err)
	}
	if len(src.Groups) == 0 {
		t.Fatalf("%s has no rule groups", alertsFile)
	}
	if diff := cmp.Diff(src.Groups, rule.Spec.Groups); diff != "" {
		t.Errorf("the PrometheusRule's groups differ from %s (-file +rule):\n%s", alertsFile, diff)
	}
}
