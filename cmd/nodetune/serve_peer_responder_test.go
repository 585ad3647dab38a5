package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/bench"
)

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
