package deploy_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodetune/nodetune/internal/nodetest"
)

// webConfigSecret is the Secret that tlsAuth mounts into the agent.
const webConfigSecret = "nodetune-web-config"

// tlsAuth returns v's manifests for the node with TLS and basic auth on
// the metrics port, as docs/deploy.md says to add them: a Secret holding
// the exporter-toolkit web configuration and the server's certificate and
// key, mounted read-only into the agent, and --web.config.file pointing at
// it. The probes are left as shipped.
func tlsAuth(t *testing.T, v *variant, user, password string, certPEM, keyPEM []byte) []byte {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ds := v.daemonSet(t).DeepCopy()
	spec := &ds.Spec.Template.Spec
	c := &spec.Containers[0]
	c.Image = imageFor(*c)
	c.Args = append(c.Args, "--web.config.file=/etc/nodetune/web.yml")
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "web-config", MountPath: "/etc/nodetune", ReadOnly: true})
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "web-config", VolumeSource: corev1.VolumeSource{
		Secret: &corev1.SecretVolumeSource{SecretName: webConfigSecret}}})
	secret := corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: webConfigSecret, Namespace: ds.Namespace},
		StringData: map[string]string{
			"web.yml": "tls_server_config:\n  cert_file: /etc/nodetune/tls.crt\n  key_file: /etc/nodetune/tls.key\n" +
				"basic_auth_users:\n  " + user + ": " + string(hash) + "\n",
			"tls.crt": string(certPEM),
			"tls.key": string(keyPEM),
		},
	}
	var b bytes.Buffer
	for _, d := range v.docs {
		data := d.data
		if d.gvk.Kind == "DaemonSet" {
			if data, err = json.Marshal(ds); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Fprintf(&b, "---\n%s\n", data)
	}
	s, err := json.Marshal(secret)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "---\n%s\n", s)
	return b.Bytes()
}

// selfSigned returns a certificate and key for ip, valid for an hour.
func selfSigned(t *testing.T, ip string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "nodetune"},
		IPAddresses:  []net.IP{net.ParseIP(ip)},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pool
}

// metricsStatus is the HTTP status of GET /metrics over TLS (trusting
// pool) on the agent of n, with basic auth credentials when user is not
// empty.
func metricsStatus(n *nodetest.Node, pool *x509.CertPool, user, password string) (int, error) {
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       n.Side.DialContext,
		TLSClientConfig:   &tls.Config{RootCAs: pool},
	}}
	req, err := http.NewRequest(http.MethodGet, "https://"+n.IP()+":9848/metrics", nil)
	if err != nil {
		return 0, err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// probesWithTLSAndBasicAuth puts TLS and basic auth on the observe
// agent's metrics port on n and checks that the kubelet's readiness and
// liveness probes, as shipped, still pass (they go to the plain health
// listener), while /metrics, over TLS, refuses a client without
// credentials and serves one with them.
func probesWithTLSAndBasicAuth(t *testing.T, n *nodetest.Node, observe *variant) {
	const user, password = "prometheus", "s3cret"
	certPEM, keyPEM, pool := selfSigned(t, n.IP())
	n.Apply(t, tlsAuth(t, observe, user, password, certPEM, keyPEM))
	rollout(t, n)
	pod := agentPod(t, n, "observe")
	if !slices.ContainsFunc(pod.Spec.Containers[0].Args, func(a string) bool { return strings.HasPrefix(a, "--web.config.file=") }) {
		t.Fatalf("pod %s runs without --web.config.file: %v", pod.Name, pod.Spec.Containers[0].Args)
	}
	waitFor(t, "a successful liveness probe with TLS and basic auth on the metrics port", func() error {
		return probeSucceeded(n, pod.Name, "Liveness")
	})
	if code, err := metricsStatus(n, pool, "", ""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("/metrics over TLS without credentials: HTTP %d, %v; want 401 (auth is not on, so the test proves nothing)", code, err)
	}
	if code, err := metricsStatus(n, pool, user, password); err != nil || code != http.StatusOK {
		t.Errorf("/metrics over TLS with credentials: HTTP %d, %v; want 200", code, err)
	}
	agentPod(t, n, "observe") // still Ready, never restarted, no warning
}
