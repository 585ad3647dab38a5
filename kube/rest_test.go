package kube

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// tlsServer is a TLS test server for handler and a configuration that
// trusts it.
func tlsServer(t *testing.T, handler http.HandlerFunc) *Config {
	t.Helper()
	srv := httptest.NewTLSServer(handler)
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return &Config{Host: srv.URL, CAData: ca, QPS: 1000, Burst: 1000}
}

// TestClientRequests: each verb's method, path, content type and body,
// and the decoded answer.
func TestClientRequests(t *testing.T) {
	type seen struct{ Method, Path, Query, Type, Body, Auth, Agent string }
	var got []seen
	cfg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), string(b), r.Header.Get("Authorization"), r.Header.Get("User-Agent")})
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"metadata":{"name":"n","resourceVersion":"9"}}`)
	})
	cfg.BearerToken = "tok"
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var n node
	if err := c.Get(ctx, Path("", "v1", "", "nodes", "n"), map[string][]string{"a": {"b"}}, &n); err != nil {
		t.Fatal(err)
	}
	if n.Name != "n" || n.ResourceVersion != "9" {
		t.Errorf("decoded %+v", n)
	}
	ev := eventsPath("default", "")
	for _, err := range []error{
		c.Patch(ctx, Path("", "v1", "", "nodes", "n", "status"), StrategicMergePatch, []byte(`{"status":{}}`), nil),
		c.Post(ctx, ev, map[string]string{"note": "x"}, nil),
		c.Put(ctx, Path("coordination.k8s.io", "v1", "kube-node-lease", "leases", "n"), []byte(`{}`), nil),
		c.Delete(ctx, eventsPath("default", "e.1"), nil),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	a, ua := "Bearer tok", "nodetune"
	want := []seen{
		{"GET", "/api/v1/nodes/n", "a=b", "", "", a, ua},
		{"PATCH", "/api/v1/nodes/n/status", "", StrategicMergePatch, `{"status":{}}`, a, ua},
		{"POST", "/apis/events.k8s.io/v1/namespaces/default/events", "", "application/json", `{"note":"x"}`, a, ua},
		{"PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n", "", "application/json", `{}`, a, ua},
		{"DELETE", "/apis/events.k8s.io/v1/namespaces/default/events/e.1", "", "", "", a, ua},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// TestClientRetryAfter: a 429 with Retry-After is tried again; one
// without, or a 404, is not.
func TestClientRetryAfter(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	cfg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		n := calls[r.URL.Path]
		mu.Unlock()
		switch {
		case r.URL.Path == "/busy" && n == 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		case r.URL.Path == "/busy":
			io.WriteString(w, `{}`)
		case r.URL.Path == "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"kind":"Status","reason":"NotFound","code":404,"message":"gone"}`)
		}
	})
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Get(ctx, "/busy", nil, nil); err != nil {
		t.Errorf("/busy: %v", err)
	}
	if err := c.Get(ctx, "/down", nil, nil); err == nil {
		t.Error("/down: no error")
	}
	if err := c.Get(ctx, "/missing", nil, nil); !IsNotFound(err) {
		t.Errorf("/missing: %v, want NotFound", err)
	}
	if diff := cmp.Diff(map[string]int{"/busy": 2, "/down": 1, "/missing": 1}, calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

// TestClientRateLimit: at QPS 20 and burst 1, five requests take at least
// 200 ms.
func TestClientRateLimit(t *testing.T) {
	cfg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) })
	cfg.QPS, cfg.Burst = 20, 1
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 5 {
		if err := c.Get(context.Background(), "/x", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Errorf("5 requests at 20/s took %s", d)
	}
}

// TestClientUntrusted: a server whose certificate no trusted CA signed
// (the test server's, against the system's roots) is refused, unless
// Insecure.
func TestClientUntrusted(t *testing.T) {
	cfg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) })
	cfg.CAData = nil
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), "/", nil, nil); err == nil {
		t.Error("an untrusted server was accepted")
	}
	cfg.CAData, cfg.Insecure = nil, true
	if c, err = NewClient(cfg); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), "/", nil, nil); err != nil {
		t.Errorf("insecure: %v", err)
	}
	for _, bad := range []*Config{nil, {}, {Host: "10.0.0.1:443"}, {Host: "https://s", CAData: []byte("no pem")}, {Host: "https://s", CertData: []byte("x")}} {
		if _, err := NewClient(bad); err == nil {
			t.Errorf("NewClient(%+v): no error", bad)
		}
	}
}

// TestTokenRotation: a token file is read again once the kubelet has
// rotated it, and the next request carries the new token; a file that
// vanishes mid-rotation keeps the last token.
func TestTokenRotation(t *testing.T) {
	var mu sync.Mutex
	var auths []string
	cfg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		io.WriteString(w, `{}`)
	})
	dir := t.TempDir()
	// As the kubelet's projected volume: token -> ..data/token, and
	// ..data a symlink swapped atomically to a new directory.
	rotate := func(gen, tok string) {
		d := filepath.Join(dir, gen)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "token"), []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(gen, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	rotate("gen1", "first")
	if err := os.Symlink("..data/token", filepath.Join(dir, "token")); err != nil {
		t.Fatal(err)
	}
	cfg.BearerToken, cfg.BearerTokenFile = "static-loses", filepath.Join(dir, "token")
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	get := func() {
		t.Helper()
		if err := c.Get(context.Background(), "/", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	get()
	get()
	rotate("gen2", "second-and-longer")
	get()
	if err := os.Remove(filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	get()
	if diff := cmp.Diff([]string{"Bearer first", "Bearer first", "Bearer second-and-longer", "Bearer second-and-longer"}, auths); diff != "" {
		t.Errorf("tokens sent (-want +got):\n%s", diff)
	}
	if _, err := (&tokenSource{file: filepath.Join(dir, "none")}).get(); err == nil {
		t.Error("a token file never read: no error")
	}
}

// TestInClusterConfig: the Service address from the environment, the
// token file (not its content, so that rotation is seen) and the CA.
func TestInClusterConfig(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
	if _, err := inClusterConfig(func(k string) string { return env[k] }, dir); err == nil {
		t.Error("no token: no error")
	}
	os.WriteFile(filepath.Join(dir, "token"), []byte("t"), 0o600)
	if _, err := inClusterConfig(func(k string) string { return env[k] }, dir); err == nil {
		t.Error("no CA: no error")
	}
	os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("CA"), 0o600)
	cfg, err := inClusterConfig(func(k string) string { return env[k] }, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{Host: "https://[fd00::1]:443", BearerTokenFile: filepath.Join(dir, "token"), CAData: []byte("CA")}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := inClusterConfig(func(string) string { return "" }, dir); err != ErrNoCluster {
		t.Errorf("no address: %v, want ErrNoCluster", err)
	}
}

// TestPath: the core group under /api, others under /apis.
func TestPath(t *testing.T) {
	for got, want := range map[string]string{
		Path("", "v1", "", "nodes", ""):                                          "/api/v1/nodes",
		Path("", "v1", "", "nodes", "a.b", "status"):                             "/api/v1/nodes/a.b/status",
		Path("crd.projectcalico.org", "v1", "", "felixconfigurations", "node.n"): "/apis/crd.projectcalico.org/v1/felixconfigurations/node.n",
		Path("events.k8s.io", "v1", "default", "events", ""):                     "/apis/events.k8s.io/v1/namespaces/default/events",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

// TestClientTimeout: a request to a server that does not answer ends
// after the timeout, 30 s by default; a watch has no such bound.
func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	cfg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.http.Timeout != defaultTimeout || c.stream.Timeout != 0 {
		t.Errorf("timeouts %s and %s (watch), want %s and none", c.http.Timeout, c.stream.Timeout, defaultTimeout)
	}
	cfg.Timeout = 100 * time.Millisecond
	if c, err = NewClient(cfg); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Get(context.Background(), "/hang", nil, nil); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("a hung request ended after %s with %v", time.Since(start), err)
	}
}

// TestClientAnswerBounded: an answer larger than maxAnswer, a success or
// an error, is refused instead of read whole into memory.
func TestClientAnswerBounded(t *testing.T) {
	big := `{"metadata":{"name":"` + strings.Repeat("x", maxAnswer) + `"}}`
	cfg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/error" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.WriteString(w, big)
	})
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var n node
	if err := c.Get(context.Background(), "/ok", nil, &n); !errors.Is(err, ErrAnswerTooLarge) {
		t.Errorf("a %d-byte answer: %v, want ErrAnswerTooLarge", len(big), err)
	}
	if err := c.Get(context.Background(), "/error", nil, nil); !errors.Is(err, ErrAnswerTooLarge) {
		t.Errorf("a %d-byte error answer: %v, want ErrAnswerTooLarge", len(big), err)
	}
}

// TestClientRetryWithinTimeout: the request timeout covers the retries
// too, and a Retry-After that would outlast the time left ends the
// request at once with the server's answer instead of sleeping.
func TestClientRetryWithinTimeout(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	cfg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path == "/later" {
			w.Header().Set("Retry-After", "3600")
		} else {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(http.StatusTooManyRequests)
	})
	cfg.Timeout = 1500 * time.Millisecond
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Bounds well above the expected 0 s and 1 s, and below what the
	// old behaviour took (the 10 s context), so a loaded machine passes.
	for path, most := range map[string]time.Duration{"/later": 5 * time.Second, "/soon": 8 * time.Second} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		err := c.Get(ctx, path, nil, nil)
		cancel()
		if d := time.Since(start); !errors.Is(err, ErrTooManyRequests) || d > most {
			t.Errorf("%s: %v after %s, want the server's 429 within %s", path, err, d.Round(time.Millisecond), most)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["/later"] != 1 || calls["/soon"] > 2 {
		t.Errorf("calls %v, want /later once and /soon at most twice in its 1.5 s", calls)
	}
}

// TestClientNoCredentialsInClear: a token or client certificate is never
// sent to an http:// server, where anyone on the path reads it; an
// http:// server without credentials (kubectl proxy) is fine.
func TestClientNoCredentialsInClear(t *testing.T) {
	for _, bad := range []*Config{
		{Host: "http://10.0.0.1:8080", BearerToken: "t"},
		{Host: "http://10.0.0.1:8080", BearerTokenFile: "/var/run/token"},
	} {
		if _, err := NewClient(bad); err == nil {
			t.Errorf("NewClient(%+v): no error", bad)
		}
	}
	if _, err := NewClient(&Config{Host: "http://127.0.0.1:8001"}); err != nil {
		t.Errorf("kubectl proxy's address: %v", err)
	}
}
