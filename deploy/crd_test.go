package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/nodetune/nodetune/kube/kubetest"
)

// serviceMonitorFile is the shipped ServiceMonitor, relative to deploy/.
const serviceMonitorFile = "components/prometheus-operator/servicemonitor.yaml"

// crdTestNamespace is where TestCRDsAreStrict applies its copies (as a dry
// run, so nothing is stored).
const crdTestNamespace = "crd-strictness"

var (
	serviceMonitors = schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "servicemonitors"}
	prometheusRules = schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "prometheusrules"}
)

// strictCase is one change to a copy of a shipped manifest and how the API
// server must answer it.
type strictCase struct {
	name string
	file string
	gvr  schema.GroupVersionResource
	edit func(t *testing.T, obj map[string]any)
	want refusal
	// mention is a part of the API server's message that names what is wrong.
	mention string
}

// refusal is how the API server must answer a changed copy.
type refusal int

const (
	// accepted: the copy must be accepted.
	accepted refusal = iota
	// undeclared: a field the schema does not declare.
	undeclared
	// duplicate: two items of a list with the same key. Server-side apply
	// finds this and an undeclared field while it builds the typed object,
	// and reports both as an internal error rather than a 4xx (kubernetes
	// issue 139253), so the message is what tells them apart.
	duplicate
	// invalid: a value the schema does not allow, a 422 Invalid.
	invalid
)

// check says what is wrong with err as the answer to a copy that must
// meet want, or "" when nothing is.
func (want refusal) check(err error) string {
	switch {
	case want == accepted && err != nil:
		return fmt.Sprintf("the API server refused the copy: %v", err)
	case want == accepted:
		return ""
	case err == nil:
		return "the API server accepted the copy"
	case want == undeclared && !strings.Contains(err.Error(), "field not declared in schema"),
		want == duplicate && !strings.Contains(err.Error(), "duplicate entries for key"),
		want == invalid && !apierrors.IsInvalid(err):
		return fmt.Sprintf("refused for another reason (%s): %v", apierrors.ReasonForError(err), err)
	}
	return ""
}

var strictCases = []strictCase{
	{name: "shipped ServiceMonitor", file: serviceMonitorFile, gvr: serviceMonitors,
		edit: func(*testing.T, map[string]any) {}},
	{name: "shipped PrometheusRule", file: ruleFile, gvr: prometheusRules,
		edit: func(*testing.T, map[string]any) {}},
	{name: "https with a scrape timeout", file: serviceMonitorFile, gvr: serviceMonitors,
		edit: func(t *testing.T, o map[string]any) {
			e := node(t, o, "spec", "endpoints", 0)
			e["scheme"], e["scrapeTimeout"], e["interval"] = "https", "10s", "1m30s"
		}},
	{name: "alert with keep_firing_for", file: ruleFile, gvr: prometheusRules,
		edit: func(t *testing.T, o map[string]any) {
			node(t, o, "spec", "groups", 0, "rules", 0)["keep_firing_for"] = "15m"
		}},

	{name: "endpoint intervall", file: serviceMonitorFile, gvr: serviceMonitors,
		edit: func(t *testing.T, o map[string]any) {
			rename(t, node(t, o, "spec", "endpoints", 0), "interval", "intervall")
		},
		want: undeclared, mention: ".spec.endpoints[0].intervall:"},
	{name: "relabeling targetlabel", file: serviceMonitorFile, gvr: serviceMonitors,
		edit: func(t *testing.T, o map[string]any) {
			rename(t, node(t, o, "spec", "endpoints", 0, "relabelings", 0), "targetLabel", "targetlabel")
		},
		want: undeclared, mention: ".spec.endpoints[0].relabelings[0].targetlabel:"},
	{name: "namespaceSelector matchName", file: serviceMonitorFile, gvr: serviceMonitors,
		edit: func(t *testing.T, o map[string]any) {
			rename(t, node(t, o, "spec", "namespaceSelector"), "matchNames", "matchName")
		},
		want: undeclared, mention: ".spec.namespaceSelector.matchName:"},
	{name: "spec endpoint", file: serviceMonitorFile, gvr: serviceMonitors,
		edit: func(t *testing.T, o map[string]any) {
			rename(t, node(t, o, "spec"), "endpoints", "endpoint")
		},
		want: undeclared, mention: ".spec.endpoint:"},
	{name: "rule annotation", file: ruleFile, gvr: prometheusRules,
		edit: func(t *testing.T, o map[string]any) {
			rename(t, node(t, o, "spec", "groups", 0, "rules", 0), "annotations", "annotation")
		},
		want: undeclared, mention: ".rules[0].annotation:"},
	{name: "rule keepFiringFor", file: ruleFile, gvr: prometheusRules,
		edit: func(t *testing.T, o map[string]any) {
			rename(t, node(t, o, "spec", "groups", 0, "rules", 0), "for", "keepFiringFor")
		},
		want: undeclared, mention: ".rules[0].keepFiringFor:"},
	{name: "group rule", file: ruleFile, gvr: prometheusRules,
		edit: func(t *testing.T, o map[string]any) {
			rename(t, node(t, o, "spec", "groups", 1), "rules", "rule")
		},
		want: undeclared, mention: `[name="nodetune-leading-indicators"].rule:`},

	{name: "interval with a space", file: serviceMonitorFile, gvr: serviceMonitors,
		edit: func(t *testing.T, o map[string]any) {
			node(t, o, "spec", "endpoints", 0)["interval"] = "30 s"
		},
		want: invalid, mention: "spec.endpoints[0].interval"},
	{name: "scheme htps", file: serviceMonitorFile, gvr: serviceMonitors,
		edit: func(t *testing.T, o map[string]any) {
			node(t, o, "spec", "endpoints", 0)["scheme"] = "htps"
		},
		want: invalid, mention: "spec.endpoints[0].scheme"},
	{name: "replace without targetLabel", file: serviceMonitorFile, gvr: serviceMonitors,
		edit: func(t *testing.T, o map[string]any) {
			delete(node(t, o, "spec", "endpoints", 0, "relabelings", 0), "targetLabel")
		},
		want: invalid, mention: "need a targetLabel"},
	{name: "rule both alert and record", file: ruleFile, gvr: prometheusRules,
		edit: func(t *testing.T, o map[string]any) {
			node(t, o, "spec", "groups", 0, "rules", 0)["record"] = "nodetune:finding:max"
		},
		want: invalid, mention: "either an alerting rule"},
	{name: "for with its units out of order", file: ruleFile, gvr: prometheusRules,
		edit: func(t *testing.T, o map[string]any) {
			node(t, o, "spec", "groups", 0, "rules", 0)["for"] = "30s10m"
		},
		want: invalid, mention: "spec.groups[0].rules[0].for"},
	{name: "duplicate group name", file: ruleFile, gvr: prometheusRules,
		edit: func(t *testing.T, o map[string]any) {
			node(t, o, "spec", "groups", 1)["name"] = node(t, o, "spec", "groups", 0)["name"]
		},
		want: duplicate, mention: `[name="nodetune-findings"]`},
}

// TestCRDsAreStrict checks, against a real API server, that the test
// schemas in testdata/crds accept the shipped ServiceMonitor and
// PrometheusRule under strict field validation, and refuse a copy with
// one misspelt field or one bad value, naming it. It also checks that the
// command TestServerSideApply runs refuses a misspelt field, so a typo in
// a manifest fails that test instead of being pruned.
func TestCRDsAreStrict(t *testing.T) {
	c := kubetest.Get(t)
	installCRDs(t, c)
	ctx := context.Background()
	if _, err := c.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: crdTestNamespace},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.Config(c.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range strictCases {
		t.Run(tc.name, func(t *testing.T) {
			obj := loadObject(t, tc.file)
			tc.edit(t, obj)
			err := applyStrict(ctx, dyn, tc.gvr, obj)
			if msg := tc.want.check(err); msg != "" {
				t.Fatal(msg)
			}
			if tc.want != accepted && !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("refused with %v; want a message that names %q", err, tc.mention)
			}
		})
	}

	t.Run("kubectl apply --server-side", func(t *testing.T) {
		obj := loadObject(t, serviceMonitorFile)
		rename(t, node(t, obj, "spec", "endpoints", 0), "path", "paht")
		data, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "servicemonitor.yaml")
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
		root, err := kubetest.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.Kubectl(t, root, "apply", "--server-side", "--validate=strict", "--dry-run=server", "-f", f)
		if err == nil || !strings.Contains(out, "paht") {
			t.Errorf("kubectl applied a ServiceMonitor with a misspelt field: err = %v\n%s", err, out)
		}
	})
}

// loadObject reads the one object in file, relative to deploy/, and moves
// it to crdTestNamespace.
func loadObject(t *testing.T, file string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	node(t, obj, "metadata")["namespace"] = crdTestNamespace
	return obj
}

// applyStrict applies obj server-side as a dry run, with strict field
// validation, as kubectl apply --server-side does.
func applyStrict(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, obj map[string]any) error {
	data, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	name, _ := obj["metadata"].(map[string]any)["name"].(string)
	force := true
	_, err = dyn.Resource(gvr).Namespace(crdTestNamespace).Patch(ctx, name, types.ApplyPatchType, data, metav1.PatchOptions{
		FieldManager:    "nodetune-crd-test",
		Force:           &force,
		DryRun:          []string{metav1.DryRunAll},
		FieldValidation: metav1.FieldValidationStrict,
	})
	return err
}

// node returns the object at path (map keys and list indexes) under obj,
// and fails t when there is none: an edit must change what it means to.
func node(t *testing.T, obj map[string]any, path ...any) map[string]any {
	t.Helper()
	var cur any = obj
	for i, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("%v is not an object", path[:i])
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v has no item %d", path[:i], k)
			}
			cur = l[k]
		}
	}
	m, ok := cur.(map[string]any)
	if !ok {
		t.Fatalf("%v is not an object", path)
	}
	return m
}

// rename moves m's field from to the name to, and fails t when m has no
// field from.
func rename(t *testing.T, m map[string]any, from, to string) {
	t.Helper()
	v, ok := m[from]
	if !ok {
		t.Fatalf("no field %s to rename", from)
	}
	delete(m, from)
	m[to] = v
}
