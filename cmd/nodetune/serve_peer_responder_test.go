package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/bench"
)

// TestNodeAddresses: InternalIP and ExternalIP of every Node count, other
// kinds do not; the list is cached, and listed again for an unknown
// address only after nodeListRetry (a Node that just joined).
func TestNodeAddresses(t *testing.T) {
	lists := 0
	body := `{"items":[{"metadata":{"name":"a"},"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.1"},{"type":"Hostname","address":"10.9.9.9"}]}},
		{"metadata":{"name":"b"},"status":{"addresses":[{"type":"ExternalIP","address":"2001:db8::2"}]}}]}`
	var fail error
	n := newNodeAddresses(func(_ context.Context, path string, _ url.Values, out any) error {
		lists++
		if path != "/api/v1/nodes" {
			t.Errorf("listed %s", path)
		}
		if fail != nil {
			return fail
		}
		return json.Unmarshal([]byte(body), out)
	}, nil)
	for addr, want := range map[string]bool{"10.0.0.1": true, "2001:db8::2": true, "10.9.9.9": false, "10.0.0.3": false} {
		got, err := n.contains(context.Background(), netip.MustParseAddr(addr))
		if err != nil || got != want {
			t.Errorf("contains(%s) = %t, %v; want %t", addr, got, err, want)
		}
	}
	if lists != 1 {
		t.Errorf("listed the Nodes %d times for four questions, want once", lists)
	}
	n.at = time.Now().Add(-nodeListRetry - time.Second)
	fail = errors.New("API server down")
	if _, err := n.contains(context.Background(), netip.MustParseAddr("10.0.0.3")); err == nil {
		t.Error("an unknown address after the retry time did not list again")
	}
	if ok, err := n.contains(context.Background(), netip.MustParseAddr("10.0.0.1")); !ok || err != nil {
		t.Errorf("a known Node within the TTL: %t, %v", ok, err)
	}
}

// TestPeerFlagsNeedToken: neither the responder nor POST /bench runs
// without a token file.
func TestPeerFlagsNeedToken(t *testing.T) {
	for _, tc := range []struct {
		p     peerFlags
		bench bool
		want  string
	}{
		{peerFlags{enable: true, maxStreams: 4, maxDuration: time.Second}, false, "--peer.token-file"},
		{peerFlags{maxStreams: 4, maxDuration: time.Second}, true, "--peer.token-file"},
		{peerFlags{enable: true, tokenFile: "t", maxStreams: 99, maxDuration: time.Second}, false, "--peer.max-streams"},
		{peerFlags{enable: true, tokenFile: "t", maxStreams: 4, maxDuration: time.Hour}, false, "--peer.max-duration"},
	} {
		if err := tc.p.check(tc.bench); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("check(%+v, bench %t) = %v, want an error naming %s", tc.p, tc.bench, err, tc.want)
		}
	}
	if err := (peerFlags{enable: true, tokenFile: "serve_peer_responder_test.go", maxStreams: 4, maxDuration: time.Second, interval: time.Hour, timeout: time.Minute}).check(true); err != nil {
		t.Errorf("a good configuration: %v", err)
	}
}

// TestGuardBench: only POST /bench is guarded; /metrics stays open.
func TestGuardBench(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("t0k"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := guardBench(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), bench.Guard{TokenFile: tok})
	for _, tc := range []struct {
		method, path, auth string
		want               int
	}{
		{http.MethodPost, "/bench", "", 401},
		{http.MethodPost, "/bench/", "Bearer nope", 401},
		{http.MethodPost, "/bench", "Bearer t0k", 200},
		{http.MethodGet, "/metrics", "", 200},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s (%q): HTTP %d, want %d", tc.method, tc.path, tc.auth, rec.Code, tc.want)
		}
	}
}
