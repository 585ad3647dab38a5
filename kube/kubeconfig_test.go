package kube

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadKubeconfig(t *testing.T) {
	dir, err := filepath.Abs("testdata/kubeconfig")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file string
		want *Config
	}{
		{"files.yaml", &Config{
			Host: "https://10.0.0.1:6443", ServerName: "kubernetes.default",
			CAData: []byte("CA FROM FILE\n"), CertData: []byte("CERT FROM FILE\n"), KeyData: []byte("KEY FROM FILE\n"),
			BearerTokenFile: filepath.Join(dir, "token"),
		}},
		{"data.yaml", &Config{
			Host: "https://127.0.0.1:6443", CAData: []byte("CA DATA\n"),
			CertData: []byte("CERT DATA\n"), KeyData: []byte("KEY DATA\n"), BearerToken: "abc",
		}},
	} {
		got, err := LoadKubeconfig(filepath.Join(dir, tc.file))
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.file, diff)
		}
	}
}

// TestKubeconfigUnsupported: what the client cannot do is refused by
// name, never ignored (an exec plugin ignored would be an anonymous
// client).
func TestKubeconfigUnsupported(t *testing.T) {
	_, err := LoadKubeconfig("testdata/kubeconfig/exec.yaml")
	if !errors.Is(err, ErrKubeconfigUnsupported) || !strings.Contains(err.Error(), "exec") {
		t.Errorf("exec plugin: %v; want ErrKubeconfigUnsupported naming exec", err)
	}
	const head = "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: 'https://s'}}]\n"
	for user, name := range map[string]string{
		"{auth-provider: {name: gcp}}":   "auth-provider",
		"{username: a, password: b}":     "username/password",
		"{token: t, as: admin}":          "impersonation",
		"{exec: {command: x}, token: t}": "exec",
	} {
		_, err := parseKubeconfig([]byte(head+"users: [{name: u, user: "+user+"}]\n"), "/")
		if !errors.Is(err, ErrKubeconfigUnsupported) || !strings.Contains(err.Error(), name) {
			t.Errorf("user %s: %v; want ErrKubeconfigUnsupported naming %s", user, err, name)
		}
	}
}

// badKubeconfigs are kubeconfigs that must fail, with what the error says.
var badKubeconfigs = map[string]string{
	"":                     "no current-context",
	"{":                    "parsing",
	"current-context: [1]": "parsing",
	"current-context: x":   `"x" is not among the contexts`,
	"current-context: x\ncontexts: [{name: x, context: {cluster: c}}]":                                                                                                                            `cluster "c", which is not among`,
	"current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {}}]":                                                                                        "no server",
	"current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: 'https://s'}}]":                                                            `user "u", which is not among`,
	"current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: 'https://s', certificate-authority-data: '%%%'}}]":                                  "parsing",
	"current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: 'https://s', certificate-authority: nope.crt}}]":                                    "nope.crt",
	"current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: 'https://s', certificate-authority-data: QQ==, insecure-skip-tls-verify: true}}]":   "choose one",
	"current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: 'https://s', proxy-url: 'http://p'}}]":                                              "proxy-url",
	"current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: 'https://s'}}]\nusers: [{name: u, user: {client-certificate-data: QQ==}}]": "needs its key",
}

func TestKubeconfigBad(t *testing.T) {
	for in, want := range badKubeconfigs {
		cfg, err := parseKubeconfig([]byte(in), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %+v, %v; want an error saying %q", in, cfg, err, want)
		}
	}
}

// TestKubeconfigAnonymous: a context with no user is an anonymous client.
func TestKubeconfigAnonymous(t *testing.T) {
	cfg, err := parseKubeconfig([]byte("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: 'https://s', insecure-skip-tls-verify: true}}]"), "/")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&Config{Host: "https://s", Insecure: true}, cfg); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// FuzzParseKubeconfig: any input parses or fails with an error, and a
// configuration it returns names a server.
func FuzzParseKubeconfig(f *testing.F) {
	for in := range badKubeconfigs {
		f.Add([]byte(in))
	}
	for _, name := range []string{"files.yaml", "data.yaml", "exec.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata/kubeconfig", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseKubeconfig(data, dir)
		if err == nil && (cfg == nil || cfg.Host == "") {
			t.Errorf("no error and no server: %+v", cfg)
		}
	})
}
