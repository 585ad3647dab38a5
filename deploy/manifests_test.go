package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// document is one YAML document of a manifest file.
type document struct {
	file string
	data []byte
	gvk  schema.GroupVersionKind
}

// splitDocuments returns the non-empty YAML documents of data.
func splitDocuments(t *testing.T, file string, data []byte) []document {
	t.Helper()
	var docs []document
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		b, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: splitting YAML documents: %v", file, err)
		}
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(b, &tm); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if tm.Kind == "" {
			continue // only comments
		}
		docs = append(docs, document{file: file, data: b, gvk: schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)})
	}
}

// decodeStrict decodes doc into its Kubernetes API type, refusing unknown
// and duplicate fields. Kinds outside the built-in API (the Prometheus
// Operator's) return nil; the API server tests validate those against
// their CRDs.
func decodeStrict(t *testing.T, doc document) runtime.Object {
	t.Helper()
	obj, err := scheme.Scheme.New(doc.gvk)
	if runtime.IsNotRegisteredError(err) {
		if doc.gvk.Group != "monitoring.coreos.com" {
			t.Errorf("%s: %s is neither a built-in kind nor a Prometheus Operator one", doc.file, doc.gvk)
		}
		return nil
	}
	if err != nil {
		t.Fatalf("%s: %v", doc.file, err)
	}
	if err := yaml.UnmarshalStrict(doc.data, obj); err != nil {
		t.Errorf("%s: %s does not decode strictly: %v", doc.file, doc.gvk.Kind, err)
	}
	return obj
}

// TestShippedManifestsDecodeStrictly decodes every manifest and patch
// under deploy/ (but the Prometheus rules, Grafana dashboard and Helm
// chart, which have tests of their own, and the kustomization files, which
// kubectl reads in TestRenderedVariants).
func TestShippedManifestsDecodeStrictly(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && slices.Contains([]string{"prometheus", "grafana", "testdata", "helm"}, path) {
			return filepath.SkipDir
		}
		if d.IsDir() || filepath.Ext(path) != ".yaml" || d.Name() == "kustomization.yaml" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, doc := range splitDocuments(t, path, data) {
			decodeStrict(t, doc)
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Errorf("decoded only %d documents; the manifests are not where this test looks", n)
	}
}

// variant is one rendered combination of an overlay and components.
type variant struct {
	name string
	docs []document
	objs []runtime.Object
}

// render runs hack/kube/manifests.sh, the script behind `make manifests`,
// and decodes every variant it writes.
func render(t *testing.T) map[string]*variant {
	t.Helper()
	vs := map[string]*variant{}
	for name, data := range renderFiles(t) {
		v := &variant{name: name}
		v.docs = splitDocuments(t, v.name, data)
		for _, d := range v.docs {
			if o := decodeStrict(t, d); o != nil {
				v.objs = append(v.objs, o)
			}
		}
		vs[v.name] = v
	}
	return vs
}

func (v *variant) daemonSet(t *testing.T) *appsv1.DaemonSet {
	t.Helper()
	var found []*appsv1.DaemonSet
	for _, o := range v.objs {
		if ds, ok := o.(*appsv1.DaemonSet); ok {
			found = append(found, ds)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d DaemonSets; want 1", v.name, len(found))
	}
	return found[0]
}

func (v *variant) kinds() []string {
	var ks []string
	for _, d := range v.docs {
		ks = append(ks, d.gvk.Kind)
	}
	slices.Sort(ks)
	return ks
}

// expectation is what one variant's DaemonSet must look like.
type expectation struct {
	mode string
	// uid is the user the container runs as.
	uid  int64
	caps []corev1.Capability
	// writable are the only mount paths that may be writable.
	writable []string
	image    string
	kinds    []string
}

// baseKinds are the kinds every variant renders, sorted, once per object:
// two Roles and their bindings (events in default, peer Leases in
// nodetune's namespace) and the peer token's Secret.
var baseKinds = []string{"ClusterRole", "ClusterRoleBinding", "DaemonSet", "Namespace", "ResourceQuota", "Role", "Role", "RoleBinding", "RoleBinding", "Secret", "Service", "ServiceAccount"}

// testTag is the IMAGE_TAG the tests render with.
const testTag = "v0.0.0-test"

func withKinds(extra ...string) []string {
	ks := append(slices.Clone(baseKinds), extra...)
	slices.Sort(ks)
	return ks
}

var (
	observeWritable   []string
	remediateWritable = []string{"/var/lib/nodetune", "/host/proc/sys/net", "/host/sys/devices"}
	expectations      = map[string]expectation{
		"observe":                       {"observe", 65534, nil, observeWritable, "ghcr.io/nodetune/nodetune:" + testTag, withKinds()},
		"remediate":                     {"remediate", 0, []corev1.Capability{"NET_ADMIN"}, remediateWritable, "ghcr.io/nodetune/nodetune:" + testTag, withKinds()},
		"observe-prometheus-operator":   {"observe", 65534, nil, observeWritable, "ghcr.io/nodetune/nodetune:" + testTag, withKinds("PrometheusRule", "ServiceMonitor")},
		"remediate-prometheus-operator": {"remediate", 0, []corev1.Capability{"NET_ADMIN"}, remediateWritable, "ghcr.io/nodetune/nodetune:" + testTag, withKinds("PrometheusRule", "ServiceMonitor")},
		"remediate-load-modules":        {"remediate", 0, []corev1.Capability{"NET_ADMIN", "SYS_MODULE"}, remediateWritable, "ghcr.io/nodetune/nodetune-modules:" + testTag, withKinds()},
		"remediate-calico": {"remediate", 0, []corev1.Capability{"NET_ADMIN"}, remediateWritable, "ghcr.io/nodetune/nodetune:" + testTag,
			withKinds("ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")},
	}
)

// TestRenderedVariants renders every overlay and component combination
// and checks the DaemonSet against what the issue and docs/deploy.md ask.
func TestRenderedVariants(t *testing.T) {
	vs := render(t)
	for name := range vs {
		if _, ok := expectations[name]; !ok {
			t.Errorf("make manifests renders %s, which this test has no expectation for", name)
		}
	}
	for name, want := range expectations {
		t.Run(name, func(t *testing.T) {
			v, ok := vs[name]
			if !ok {
				t.Fatalf("make manifests does not render %s", name)
			}
			if got := v.kinds(); !slices.Equal(got, want.kinds) {
				t.Errorf("kinds = %v; want %v", got, want.kinds)
			}
			ds := v.daemonSet(t)
			checkDaemonSet(t, ds, want)
			// The calico component, and only it, turns on the agent's
			// cooperation with Felix.
			if got := slices.Contains(ds.Spec.Template.Spec.Containers[0].Args, "--calico.cooperate"); got != strings.HasSuffix(name, "-calico") {
				t.Errorf("--calico.cooperate in the arguments: %t", got)
			}
		})
	}
}

func checkDaemonSet(t *testing.T, ds *appsv1.DaemonSet, want expectation) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork {
		t.Error("hostNetwork is off; nodetune must see the node's own links")
	}
	if spec.HostPID || spec.HostIPC {
		t.Error("hostPID or hostIPC is on; nodetune needs neither")
	}
	if sp := spec.SecurityContext; sp == nil || sp.SeccompProfile == nil || sp.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("the pod's seccomp profile is not RuntimeDefault")
	}
	if !slices.ContainsFunc(spec.Tolerations, func(t corev1.Toleration) bool {
		return t.Operator == corev1.TolerationOpExists && t.Key == "" && t.Effect == ""
	}) {
		t.Errorf("tolerations %v do not tolerate every taint; the agent must run on every node", spec.Tolerations)
	}
	u := ds.Spec.UpdateStrategy
	if u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil ||
		u.RollingUpdate.MaxUnavailable == nil || u.RollingUpdate.MaxUnavailable.IntValue() != 1 ||
		u.RollingUpdate.MaxSurge == nil || u.RollingUpdate.MaxSurge.IntValue() != 0 {
		t.Errorf("update strategy %+v; want RollingUpdate with maxUnavailable 1 and maxSurge 0", u)
	}
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Fatalf("%d containers and %d init containers; want one container", len(spec.Containers), len(spec.InitContainers))
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q; the agent must outlast node pressure (system-node-critical)", spec.PriorityClassName)
	}
	c := spec.Containers[0]
	if c.Image != want.image || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %s (%s); want %s, IfNotPresent", c.Image, c.ImagePullPolicy, want.image)
	}
	// /metrics and /findings answer on the node's IP only, not on every
	// interface of the host network.
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.hostIP"
	}) {
		t.Error("NODE_IP does not come from the downward API's status.hostIP")
	}
	if slices.Contains(c.Args, "--web.enable-bench") {
		t.Error("the DaemonSet enables POST /bench")
	}
	for _, arg := range []string{"serve", "--mode=" + want.mode, "--path.procfs=/host/proc", "--path.sysfs=/host/sys",
		"--path.rootfs=/host/root", "--web.listen-address=$(NODE_IP):9848"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	// Only remediation keeps a journal, on the host, where rollback finds it.
	if hasState := slices.Contains(c.Args, "--state-dir=/var/lib/nodetune"); hasState != (want.mode == "remediate") {
		t.Errorf("args %v: --state-dir=/var/lib/nodetune present %v in %s mode", c.Args, hasState, want.mode)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	}) {
		t.Error("NODE_NAME does not come from the downward API's spec.nodeName")
	}
	for _, r := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
		if _, ok := r[corev1.ResourceMemory]; !ok {
			t.Errorf("memory request or limit missing: %+v", c.Resources)
		}
	}
	checkProbes(t, c)
	checkSecurityContext(t, c.SecurityContext, want.caps)
	if sc := c.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != want.uid ||
		sc.RunAsNonRoot == nil || *sc.RunAsNonRoot != (want.uid != 0) {
		t.Errorf("the container does not run as uid %d with runAsNonRoot %v", want.uid, want.uid != 0)
	}
	checkMounts(t, spec, c, want.writable)
}

// checkProbes: the kubelet's probes go to the plain health listener that
// the arguments start, on the node's loopback, never to the metrics port,
// which --web.config.file may put behind TLS or basic auth.
func checkProbes(t *testing.T, c corev1.Container) {
	t.Helper()
	var health string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--web.health-address="); ok {
			health = v
		}
	}
	host, port, err := net.SplitHostPort(health)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("args %v: want --web.health-address=127.0.0.1:PORT (%v)", c.Args, err)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe is not an httpGet", name)
			continue
		}
		g := p.HTTPGet
		if want := map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[name]; g.Path != want {
			t.Errorf("%s probe path %s, want %s", name, g.Path, want)
		}
		if g.Host != host || (g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP) {
			t.Errorf("%s probe goes to host %q scheme %q; want %s over plain HTTP", name, g.Host, g.Scheme, host)
		}
		if got := probePort(t, c, g.Port); strconv.Itoa(int(got)) != port {
			t.Errorf("%s probe port %d; the health listener is on %s", name, got, port)
		}
	}
}

// probePort resolves a probe's port, by name through the container's ports.
func probePort(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Fatalf("probe port %q names no container port", p.StrVal)
	return 0
}

func checkSecurityContext(t *testing.T, sc *corev1.SecurityContext, caps []corev1.Capability) {
	t.Helper()
	if sc == nil {
		t.Fatal("no container security context")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged: true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("the container's seccomp profile is not RuntimeDefault")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities %+v do not drop ALL", sc.Capabilities)
	} else if !slices.Equal(sc.Capabilities.Add, caps) {
		t.Errorf("capabilities add %v; want exactly %v", sc.Capabilities.Add, caps)
	}
	if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
		t.Error("procMount is not Default")
	}
}

// checkMounts checks that the host's /proc, /sys and / are mounted
// read-only (recursively where the runtime can) and that only the given
// paths are writable on the host, each a hostPath the docs explain; an
// emptyDir (the pod's own, size-limited) may be written too.
func checkMounts(t *testing.T, spec corev1.PodSpec, c corev1.Container, writable []string) {
	t.Helper()
	hostPaths := map[string]string{}
	scratch := map[string]bool{} // emptyDirs: the pod's own, bounded
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Name == "peer-token" && v.Secret.SecretName == "nodetune-peer" {
			continue // the peer token (TestPeerDaemonSet)
		}
		if v.HostPath == nil && v.EmptyDir == nil {
			t.Errorf("volume %s is neither a hostPath nor an emptyDir", v.Name)
		}
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
		if v.EmptyDir != nil {
			if v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.IsZero() {
				t.Errorf("emptyDir %s has no size limit", v.Name)
			}
			scratch[v.Name] = true
		}
	}
	readOnly := map[string]string{"/host/proc": "/proc", "/host/sys": "/sys", "/host/root": "/"}
	var gotWritable []string
	for _, m := range c.VolumeMounts {
		if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
			t.Errorf("mount %s propagates mounts (%s)", m.MountPath, *m.MountPropagation)
		}
		if from, ok := readOnly[m.MountPath]; ok {
			if hostPaths[m.Name] != from {
				t.Errorf("%s mounts host path %q; want %s", m.MountPath, hostPaths[m.Name], from)
			}
			if !m.ReadOnly || m.RecursiveReadOnly == nil || *m.RecursiveReadOnly != corev1.RecursiveReadOnlyIfPossible {
				t.Errorf("%s is not mounted read-only, recursively where possible", m.MountPath)
			}
			delete(readOnly, m.MountPath)
		}
		if !m.ReadOnly && !scratch[m.Name] {
			gotWritable = append(gotWritable, m.MountPath)
		}
	}
	for p := range readOnly {
		t.Errorf("%s is not mounted", p)
	}
	slices.Sort(gotWritable)
	writable = slices.Sorted(slices.Values(writable))
	if !slices.Equal(gotWritable, writable) {
		t.Errorf("writable mounts %v; want exactly %v", gotWritable, writable)
	}
}

// placeholderTag is the base DaemonSet's image tag, which `make manifests`
// or a kustomization replaces.
const placeholderTag = "set-by-make-manifests"

// TestShippedImagesPinned: no shipped manifest runs an image by the latest
// tag (or none, which means latest): with IfNotPresent, nodes would keep
// whichever build they pulled first. The base carries a placeholder that
// cannot be pulled, so an unrendered apply fails visibly.
func TestShippedImagesPinned(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() && path == "helm" {
			return filepath.SkipDir // templates: helm_test.go renders and checks them
		}
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			v, ok := strings.CutPrefix(strings.TrimSpace(line), "image:")
			if !ok {
				continue
			}
			n++
			image := strings.TrimSpace(v)
			name, tag, ok := strings.Cut(image[strings.LastIndex(image, "/")+1:], ":")
			if !ok || tag == "latest" || tag == "" {
				t.Errorf("%s: image %s is not pinned to a tag", path, image)
			}
			if path == "base/daemonset.yaml" && (name != "nodetune" || tag != placeholderTag) {
				t.Errorf("%s: image %s; want the placeholder tag %s", path, image, placeholderTag)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no image: line found under deploy/")
	}
}
