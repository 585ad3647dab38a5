package deploy_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"

	"github.com/nodetune/nodetune/kube/kubetest"
)

// chartDir is nodetune's Helm chart.
const chartDir = "helm/nodetune"

// helmVariants are the chart values that make the same choices as each
// variant hack/kube/manifests.sh renders from the overlays and components.
var helmVariants = map[string][]string{
	"observe":                       nil,
	"remediate":                     {"mode=remediate"},
	"observe-prometheus-operator":   {"prometheusOperator.enabled=true"},
	"remediate-prometheus-operator": {"mode=remediate", "prometheusOperator.enabled=true"},
	"remediate-load-modules":        {"mode=remediate", "loadModules=true"},
	"remediate-calico":              {"mode=remediate", "calico.cooperate=true"},
}

// helm runs the helm binary that make deps builds into .cache/bin.
func helm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(kubetest.Tool(t, "helm"), args...)
	// No repositories, plugins or caches of the user's: the chart needs none.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// helmTemplate renders the chart as release "nodetune" in namespace
// nodetune, with the tag the kustomize variants are rendered with, the
// Namespace object (which kustomize renders too), and sets.
func helmTemplate(t *testing.T, sets ...string) ([]byte, error) {
	t.Helper()
	args := []string{"template", "nodetune", chartDir, "--namespace", "nodetune",
		"--set", "image.tag=" + testTag, "--set", "namespace.create=true"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return helm(t, args...)
}

// objectKey names an object: kind, namespace and name.
func objectKey(o map[string]any) string {
	meta, _ := o["metadata"].(map[string]any)
	return fmt.Sprintf("%s %v/%v", o["kind"], meta["namespace"], meta["name"])
}

// parseObjects decodes every document of a rendered manifest into generic
// objects keyed by objectKey, so that two renderings compare by content,
// not by text, order of documents or YAML style.
func parseObjects(t *testing.T, name string, data []byte) map[string]map[string]any {
	t.Helper()
	objs := map[string]map[string]any{}
	for _, d := range splitDocuments(t, name, data) {
		var o map[string]any
		if err := yaml.Unmarshal(d.data, &o); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		normalize(o)
		k := objectKey(o)
		if _, dup := objs[k]; dup {
			t.Errorf("%s renders %s twice", name, k)
		}
		objs[k] = o
	}
	return objs
}

// normalize sorts the lists the API treats as maps keyed by a field
// (listType=map: a pod's volumes by name, a container's volumeMounts by
// mountPath), whose order carries no meaning. Kustomize's strategic merge
// puts a patch's entries first; the chart lists them in reading order.
func normalize(o map[string]any) {
	if o["kind"] == "Secret" {
		// The peer token: the chart generates one, kustomize leaves it to
		// the operator (deploy/base/peer-secret.yaml); TestPeerSecret
		// checks both.
		delete(o, "data")
		return
	}
	if o["kind"] != "DaemonSet" {
		return
	}
	spec := dig(o, "spec", "template", "spec")
	sortBy(spec, "volumes", "name")
	containers, _ := spec["containers"].([]any)
	for _, c := range containers {
		if c, ok := c.(map[string]any); ok {
			sortBy(c, "volumeMounts", "mountPath")
		}
	}
}

func dig(o map[string]any, path ...string) map[string]any {
	for _, p := range path {
		o, _ = o[p].(map[string]any)
	}
	return o
}

func sortBy(o map[string]any, list, key string) {
	items, _ := o[list].([]any)
	slices.SortFunc(items, func(a, b any) int {
		am, _ := a.(map[string]any)
		bm, _ := b.(map[string]any)
		return cmp.Compare(fmt.Sprint(am[key]), fmt.Sprint(bm[key]))
	})
}

// TestHelmChartMatchesKustomize renders every variant both ways, with
// kustomize (hack/kube/manifests.sh, the script behind make manifests)
// and with the chart given the same choices, and requires the same
// objects, field for field. Any change to the base, an overlay or a
// component that the chart does not follow (or the reverse) fails here.
func TestHelmChartMatchesKustomize(t *testing.T) {
	kustomized := renderFiles(t)
	for name := range kustomized {
		if _, ok := helmVariants[name]; !ok {
			t.Errorf("make manifests renders %s, which the chart has no values for", name)
		}
	}
	for name, sets := range helmVariants {
		t.Run(name, func(t *testing.T) {
			kdata, ok := kustomized[name]
			if !ok {
				t.Fatalf("make manifests does not render %s", name)
			}
			hdata, err := helmTemplate(t, sets...)
			if err != nil {
				t.Fatal(err)
			}
			want := parseObjects(t, "kustomize "+name, kdata)
			got := parseObjects(t, "helm "+name, hdata)
			if len(want) < len(baseKinds) {
				t.Fatalf("kustomize rendered only %d objects", len(want))
			}
			if diff := gocmp.Diff(want, got); diff != "" {
				t.Errorf("the chart with %v differs from kustomize's %s (-kustomize +helm):\n%s", sets, name, diff)
			}
		})
	}
}

// renderFiles runs hack/kube/manifests.sh and returns each variant's
// rendered text.
func renderFiles(t *testing.T) map[string][]byte {
	t.Helper()
	kubectl := kubetest.Tool(t, "kubectl")
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(root, "hack/kube/manifests.sh"), out)
	cmd.Env = append(os.Environ(), "KUBECTL="+kubectl, "IMAGE_TAG="+testTag)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/kube/manifests.sh: %v\n%s", err, b)
	}
	files, err := filepath.Glob(filepath.Join(out, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	vs := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		vs[strings.TrimSuffix(filepath.Base(f), ".yaml")] = data
	}
	return vs
}

// TestHelmLint runs helm lint --strict on the chart with its defaults and
// with each variant's values.
func TestHelmLint(t *testing.T) {
	for name, sets := range helmVariants {
		args := []string{"lint", "--strict", chartDir, "--set", "image.tag=" + testTag}
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		if out, err := helm(t, args...); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
}

// TestHelmRefusesBadValues: values the chart cannot honour fail the
// render with a message that names the value, rather than rendering
// something else.
func TestHelmRefusesBadValues(t *testing.T) {
	for _, c := range []struct {
		sets []string
		want string
	}{
		{[]string{"mode=fix"}, "mode"},
		{[]string{"loadModules=true"}, "mode"},
		{[]string{"image.tag=latest"}, "tag"},
		{[]string{"prometheusOperator.serviceMonitor.interval=30 seconds"}, "interval"},
		{[]string{"imageTag=v1"}, "imageTag"},
	} {
		out, err := helmTemplate(t, c.sets...)
		if err == nil {
			t.Errorf("%v renders:\n%s", c.sets, out)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v fails without naming %s: %v", c.sets, c.want, err)
		}
	}
	// Without image.tag the chart runs its appVersion, a placeholder no
	// registry has: the pull fails, as with the kustomize base, rather
	// than an unknown version running.
	out, err := helm(t, "template", "nodetune", chartDir, "--namespace", "nodetune")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "image: ghcr.io/nodetune/nodetune:"+placeholderTag) {
		t.Errorf("without image.tag the chart does not run the placeholder tag %s", placeholderTag)
	}
}

// TestHelmValuesDocumented: every value the schema declares has a
// description there and a comment above it in values.yaml, and
// values.yaml sets every value the schema declares (and, since the
// schema refuses unknown keys and helm lint checks values.yaml against
// it, nothing else).
func TestHelmValuesDocumented(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema jsonSchema
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Content) != 1 {
		t.Fatal("values.yaml is not one YAML document")
	}
	n := checkDocumented(t, "", &schema, doc.Content[0])
	if n < 10 {
		t.Errorf("checked only %d values", n)
	}
}

// jsonSchema is the part of a JSON schema TestHelmValuesDocumented reads.
type jsonSchema struct {
	Description string                 `json:"description"`
	Properties  map[string]*jsonSchema `json:"properties"`
}

// checkDocumented checks the values under node against schema and returns
// how many it checked. Below a schema leaf (resources, tolerations) the
// value is one documented block.
func checkDocumented(t *testing.T, path string, schema *jsonSchema, node *yamlv3.Node) int {
	t.Helper()
	if node.Kind != yamlv3.MappingNode {
		t.Errorf("values.yaml: %s is not a map", path)
		return 0
	}
	set := map[string]bool{}
	n := 0
	for i := 0; i+1 < len(node.Content); i += 2 {
		key, val := node.Content[i], node.Content[i+1]
		p := strings.TrimPrefix(path+"."+key.Value, ".")
		set[key.Value] = true
		s, ok := schema.Properties[key.Value]
		if !ok {
			t.Errorf("values.yaml sets %s, which the schema does not declare", p)
			continue
		}
		n++
		if strings.TrimSpace(s.Description) == "" {
			t.Errorf("values.schema.json: %s has no description", p)
		}
		if !strings.Contains(key.HeadComment, "# --") {
			t.Errorf("values.yaml: %s has no \"# --\" comment above it", p)
		}
		if len(s.Properties) > 0 {
			n += checkDocumented(t, p, s, val)
		}
	}
	for k := range schema.Properties {
		if !set[k] && k != "global" {
			t.Errorf("values.yaml does not set %s", strings.TrimPrefix(path+"."+k, "."))
		}
	}
	return n
}

// TestHelmAlertsCopy: the chart's copy of the alerting rules is the
// shipped file (TestPrometheusRule -update writes both).
func TestHelmAlertsCopy(t *testing.T) {
	want, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(chartAlertsFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(chartAlertsFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is out of date with %s; run: go test ./deploy -run 'TestPrometheusRule|TestHelmAlertsCopy' -update", chartAlertsFile, alertsFile)
	}
}

// chartAlertsFile is the chart's copy of the alerting rules: a chart can
// read only files inside it.
const chartAlertsFile = chartDir + "/files/nodetune-alerts.yaml"
