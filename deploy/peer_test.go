package deploy_test

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/nodetune/nodetune/kube/kubetest"
)

// TestPeerDaemonSet: every variant runs the peer responder on the node's
// own IP with the token of the nodetune-peer Secret, mounted whole (a
// subPath mount would never see a rotated token) and optional, declares
// the port, and carries the Secret object, without a value: kustomize
// cannot generate one (deploy/base/peer-secret.yaml).
func TestPeerDaemonSet(t *testing.T) {
	for name, v := range render(t) {
		t.Run(name, func(t *testing.T) {
			c := v.daemonSet(t).Spec.Template.Spec.Containers[0]
			for _, arg := range []string{"--peer.enable", "--peer.token-file=/etc/nodetune/peer/token", "--peer.listen-address=$(NODE_IP):9849"} {
				if !slices.Contains(c.Args, arg) {
					t.Errorf("args %v lack %s", c.Args, arg)
				}
			}
			if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
				return p.Name == "peer" && p.ContainerPort == 9849 && p.Protocol == corev1.ProtocolTCP
			}) {
				t.Errorf("ports %v lack peer 9849/TCP", c.Ports)
			}
			i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/etc/nodetune/peer" })
			if i < 0 || !c.VolumeMounts[i].ReadOnly || c.VolumeMounts[i].SubPath != "" {
				t.Fatalf("the token is not mounted read-only and whole at /etc/nodetune/peer: %+v", c.VolumeMounts)
			}
			vols := v.daemonSet(t).Spec.Template.Spec.Volumes
			j := slices.IndexFunc(vols, func(vol corev1.Volume) bool { return vol.Name == c.VolumeMounts[i].Name })
			if j < 0 || vols[j].Secret == nil || vols[j].Secret.SecretName != "nodetune-peer" ||
				vols[j].Secret.Optional == nil || !*vols[j].Secret.Optional {
				t.Errorf("the token volume is not the optional Secret nodetune-peer: %+v", vols)
			}
			var secrets int
			for _, o := range v.objs {
				if s, ok := o.(*corev1.Secret); ok {
					secrets++
					if s.Name != "nodetune-peer" || s.Namespace != "nodetune" || len(s.Data)+len(s.StringData) != 0 {
						t.Errorf("Secret %s/%s with %d values; want nodetune/nodetune-peer with none", s.Namespace, s.Name, len(s.Data)+len(s.StringData))
					}
				}
			}
			if secrets != 1 {
				t.Errorf("%d Secrets rendered, want 1", secrets)
			}
		})
	}
}

// TestPeerSecretGenerated: the chart generates the token (48 random
// characters), a new one on each render without a cluster to look up.
func TestPeerSecretGenerated(t *testing.T) {
	token := func() string {
		t.Helper()
		out, err := helmTemplate(t)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range splitDocuments(t, "helm", out) {
			var s corev1.Secret
			if d.gvk.Kind != "Secret" {
				continue
			}
			if err := yaml.Unmarshal(d.data, &s); err != nil {
				t.Fatal(err)
			}
			if s.Name == "nodetune-peer" {
				return string(s.Data["token"])
			}
		}
		t.Fatal("the chart renders no nodetune-peer Secret")
		return ""
	}
	a, b := token(), token()
	if len(a) != 48 || len(b) != 48 || a == b {
		t.Errorf("tokens %q and %q: want two different 48-character tokens", a, b)
	}
}

// TestPeerSecretSurvivesApply: the token an operator sets with a patch, as
// docs/deploy.md says, stays when the manifests are applied again.
func TestPeerSecretSurvivesApply(t *testing.T) {
	c := kubetest.Get(t)
	kubectl(t, c, "apply", "--server-side", "-k", "deploy/overlays/observe")
	ctx := context.Background()
	patch := `{"stringData":{"token":"operator-token"}}`
	if _, err := c.Admin.CoreV1().Secrets("nodetune").Patch(ctx, "nodetune-peer", types.MergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: "kubectl-patch"}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, c, "apply", "--server-side", "-k", "deploy/overlays/observe")
	kubectl(t, c, "apply", "--server-side", "-k", "deploy/overlays/remediate")
	s, err := c.Admin.CoreV1().Secrets("nodetune").Get(ctx, "nodetune-peer", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(s.Data["token"]); got != "operator-token" {
		t.Errorf("after applying again the token is %q, want operator-token", got)
	}
}
