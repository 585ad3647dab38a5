package bench

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/procfs"

	"github.com/nodetune/nodetune/detect"
)

func TestBottleneck(t *testing.T) {
	idle := &Usage{CPUs: []CPUShare{{CPU: 0, Busy: 0.2}, {CPU: 1, Busy: 0.1}}}
	for _, tc := range []struct {
		name             string
		sender, receiver *Usage
		want             string
	}{
		{"nothing stands out", idle, idle, ""},
		{"unknown ends", nil, nil, ""},
		{"softirq on the receiver", idle, &Usage{CPUs: []CPUShare{{CPU: 0, Busy: 0.3}, {CPU: 1, Softirq: 0.97, Busy: 1}}}, "cpu1 at 97% softirq on the receiver"},
		{"softirq beats busy", &Usage{CPUs: []CPUShare{{CPU: 0, Busy: 1}}}, &Usage{CPUs: []CPUShare{{CPU: 3, Softirq: 0.92, Busy: 0.95}}}, "cpu3 at 92% softirq on the receiver"},
		{"drops first", &Usage{Dropped: 12, CPUs: []CPUShare{{CPU: 0, Softirq: 1, Busy: 1}}}, idle, "12 softnet drops on the sender (netdev_max_backlog full)"},
		{"steal", &Usage{CPUs: []CPUShare{{CPU: 2, Steal: 0.25, Busy: 0.5}}}, idle, "cpu2 at 25% steal on the sender"},
		{"busy", &Usage{CPUs: []CPUShare{{CPU: 0, Busy: 0.99, Softirq: 0.4}}}, idle, "cpu0 at 99% busy (40% softirq) on the sender"},
		{"squeezes last", idle, &Usage{Squeezed: 3, CPUs: idle.CPUs}, "3 softnet squeezes on the receiver (netdev_budget ran out)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Bottleneck(tc.sender, tc.receiver); got != tc.want {
				t.Errorf("Bottleneck = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	t0 := time.Unix(100, 0)
	a := cpuSample{at: t0,
		cpu:     map[int64]procfs.CPUStat{0: {User: 10, Idle: 90}, 1: {SoftIRQ: 5, Idle: 95, Steal: 1}},
		softnet: map[uint32]procfs.SoftnetStat{0: {Dropped: 4294967295}, 1: {TimeSqueezed: 7}}}
	b := cpuSample{at: t0.Add(2 * time.Second),
		cpu:     map[int64]procfs.CPUStat{0: {User: 11, Idle: 91}, 1: {SoftIRQ: 6.8, Idle: 95.2, Steal: 1}, 2: {Idle: 3}},
		softnet: map[uint32]procfs.SoftnetStat{0: {Dropped: 2}, 1: {TimeSqueezed: 9}}}
	want := Usage{Seconds: 2, CPUs: []CPUShare{
		{CPU: 0, Busy: 0.5},
		{CPU: 1, Softirq: 0.9, Busy: 0.9},
	}, Dropped: 3, Squeezed: 2}
	if diff := cmp.Diff(want, usage(a, b), cmpApprox); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}
}

var cmpApprox = cmp.Comparer(func(x, y float64) bool { return x-y < 1e-9 && y-x < 1e-9 })

func TestTunnelAliasRoundTrip(t *testing.T) {
	exp := time.Unix(1_800_000_000, 0)
	pid, got, err := parseTunnelAlias(tunnelAlias(4242, exp))
	if err != nil || pid != 4242 || !got.Equal(exp) {
		t.Fatalf("parseTunnelAlias(tunnelAlias) = %d, %v, %v", pid, got, err)
	}
	for _, bad := range []string{"", "nodetune-peer", "nodetune-peer pid=0 expires=1", "nodetune-peer pid=1 expires=-1",
		"other pid=1 expires=1", "nodetune-peer expires=1 pid=1", "nodetune-peer pid=x expires=1"} {
		if _, _, err := parseTunnelAlias(bad); err == nil {
			t.Errorf("parseTunnelAlias(%q) took it", bad)
		}
	}
}

func FuzzParseTunnelAlias(f *testing.F) {
	f.Add(tunnelAlias(1, time.Unix(5, 0)))
	f.Add("nodetune-peer pid=99999999999999999999 expires=1")
	f.Add("nodetune-peer  pid=1   expires=9")
	f.Fuzz(func(t *testing.T, s string) {
		pid, exp, err := parseTunnelAlias(s)
		if err != nil {
			return
		}
		if pid <= 0 || exp.Unix() < 0 {
			t.Fatalf("%q parsed to pid %d expiry %v", s, pid, exp)
		}
		if p2, e2, err := parseTunnelAlias(tunnelAlias(pid, exp)); err != nil || p2 != pid || !e2.Equal(exp) {
			t.Fatalf("%q does not round-trip: %d %v %v", s, p2, e2, err)
		}
	})
}

func TestDevicePID(t *testing.T) {
	for name, want := range map[string]int{"ntpr-123": 123, "ntpm-7": 7, "456": 456, "ntpr-": 0, "ntpr-x1": 0, "ntpr-+5": 0, "ntpr--5": 0} {
		got, ok := devicePID(name)
		if got != want && ok || ok != (want != 0) {
			t.Errorf("devicePID(%q) = %d, %t; want %d", name, got, ok, want)
		}
	}
}

func TestPeerURL(t *testing.T) {
	for _, tc := range []struct{ in, base, host string }{
		{"10.0.0.2", "http://10.0.0.2:9849", "10.0.0.2"},
		{"node-b:1234", "http://node-b:1234", "node-b"},
		{"fd00::2", "http://[fd00::2]:9849", "fd00::2"},
		{"[fd00::2]:99", "http://[fd00::2]:99", "fd00::2"},
	} {
		base, host, err := peerURL(tc.in, false)
		if err != nil || base != tc.base || host != tc.host {
			t.Errorf("peerURL(%q) = %q, %q, %v; want %q, %q", tc.in, base, host, err, tc.base, tc.host)
		}
	}
	for _, bad := range []string{"", "host:0", "host:99999", ":80", "host:x"} {
		if _, _, err := peerURL(bad, false); err == nil {
			t.Errorf("peerURL(%q) took it", bad)
		}
	}
	if base, _, _ := peerURL("h", true); base != "https://h:9849" {
		t.Errorf("with TLS: %q", base)
	}
}

// tokenFile writes token to a file for the test.
func tokenFile(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGuard: the token (read again on every request, so a rotated one
// takes effect), then the Node address; nothing reaches the handler
// otherwise.
func TestGuard(t *testing.T) {
	file := tokenFile(t, "right\n")
	isNode, nodeErr := true, error(nil)
	g := Guard{TokenFile: file, NodeAddress: func(_ context.Context, a netip.Addr) (bool, error) {
		if a != netip.MustParseAddr("192.0.2.1") {
			t.Errorf("asked about %s, want the request's source address", a)
		}
		return isNode, nodeErr
	}}
	reached := 0
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached++ }))
	do := func(auth string) int {
		req := httptest.NewRequest(http.MethodPost, "/v1/sessions", nil)
		req.RemoteAddr = "192.0.2.1:5555"
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, tc := range []struct {
		name   string
		auth   string
		setup  func()
		want   int
		reachs bool
	}{
		{"no token", "", nil, 401, false},
		{"wrong token", "Bearer wrong", nil, 401, false},
		{"token without Bearer", "right", nil, 401, false},
		{"prefix of the token", "Bearer righ", nil, 401, false},
		{"right token", "Bearer right", nil, 200, true},
		{"not a Node", "Bearer right", func() { isNode = false }, 403, false},
		{"Nodes unknown", "Bearer right", func() { isNode, nodeErr = true, errors.New("API down") }, 503, false},
		{"rotated: old refused", "Bearer right", func() { nodeErr = nil; os.WriteFile(file, []byte("new"), 0o600) }, 401, false},
		{"rotated: new taken", "Bearer new", nil, 200, true},
		{"two tokens: the first", "Bearer new", func() { os.WriteFile(file, []byte("new\nnewer\n"), 0o600) }, 200, true},
		{"two tokens: the second", "Bearer newer", nil, 200, true},
		{"two tokens: neither", "Bearer new\nnewer", nil, 401, false},
		{"empty token file refuses all", "Bearer ", func() { os.WriteFile(file, []byte("\n"), 0o600) }, 503, false},
	} {
		if tc.setup != nil {
			tc.setup()
		}
		before := reached
		if got := do(tc.auth); got != tc.want || (reached > before) != tc.reachs {
			t.Errorf("%s: HTTP %d, reached %t; want %d, %t", tc.name, got, reached > before, tc.want, tc.reachs)
		}
	}
}

// newTestResponder is a responder whose sweep and netlink work without
// privilege (listing links is unprivileged).
func newTestResponder(t *testing.T, token string) (*Responder, *httptest.Server) {
	t.Helper()
	r, err := NewResponder(ResponderOptions{Guard: Guard{TokenFile: tokenFile(t, token)}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r, srv
}

func post(t *testing.T, url, token, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestResponderSessions: a wrong token opens nothing; the responder caps
// streams and duration; a second session while one runs gets 429 with
// Retry-After; no other path is served; after DELETE a new one opens.
func TestResponderSessions(t *testing.T) {
	r, srv := newTestResponder(t, "tok")
	open := srv.URL + PeerPathSessions
	if resp, _ := post(t, open, "nope", `{"streams":1,"duration_ms":100,"cases":1}`); resp.StatusCode != 401 || r.sess != nil {
		t.Fatalf("wrong token: HTTP %d, session %v", resp.StatusCode, r.sess)
	}
	resp, body := post(t, open, "tok", `{"streams":500,"duration_ms":3600000,"warmup_ms":60000,"cases":99}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("open: HTTP %d %s", resp.StatusCode, body)
	}
	var s sessionResponse
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	if s.Streams != MaxPeerStreams || s.DurationMS != MaxPeerDuration.Milliseconds() || s.WarmupMS != MaxPeerWarmup.Milliseconds() {
		t.Errorf("caps not applied: %+v", s)
	}
	if max := time.Duration(maxPeerCases)*(MaxPeerDuration+MaxPeerWarmup+5*time.Second) + peerSlack; time.Until(s.Expires) > max {
		t.Errorf("session expires in %s, more than %s", time.Until(s.Expires), max)
	}
	resp, body = post(t, open, "tok", `{"streams":1,"duration_ms":100,"cases":1}`)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second session: HTTP %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, _ := post(t, srv.URL+"/metrics", "tok", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another path: HTTP %d, want 404", resp.StatusCode)
	}
	if resp, _ := post(t, srv.URL+PeerPathSessions+"/"+s.ID+"/cases", "tok", `{"name":"host","direction":"sideways"}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad direction: HTTP %d, want 400", resp.StatusCode)
	}
	if resp, _ := post(t, srv.URL+PeerPathSessions+"/"+s.ID+"/cases", "tok", `{"name":"tunnel-offload-on","direction":"send"}`); resp.StatusCode != http.StatusConflict {
		t.Errorf("offload case without a temporary tunnel: HTTP %d, want 409", resp.StatusCode)
	}
	if resp, _ := post(t, srv.URL+PeerPathSessions+"/"+s.ID+"/tunnel", "tok", `{"kind":"ipip","mtu":1450,"vni":1,"port":4790,"subnet":"169.254.96.0/30"}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("ipip temporary tunnel: HTTP %d, want 400", resp.StatusCode)
	}
	if resp, _ := post(t, srv.URL+PeerPathSessions+"/"+s.ID+"/tunnel", "tok", `{"kind":"vxlan","mtu":1450,"vni":1,"port":4790,"subnet":"10.0.0.0/30"}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a subnet outside the link-local range: HTTP %d, want 400", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+PeerPathSessions+"/"+s.ID, nil)
	req.Header.Set("Authorization", "Bearer tok")
	dresp, err := http.DefaultClient.Do(req)
	if err != nil || dresp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %v %v", dresp, err)
	}
	dresp.Body.Close()
	if resp, body := post(t, open, "tok", `{"streams":1,"duration_ms":100,"cases":1}`); resp.StatusCode != http.StatusCreated {
		t.Errorf("a session after the first ended: HTTP %d %s", resp.StatusCode, body)
	}
}

// TestResponderSessionDeadline: a session whose measurer vanished ends at
// its deadline, and frees the node.
func TestResponderSessionDeadline(t *testing.T) {
	r, srv := newTestResponder(t, "tok")
	if resp, body := post(t, srv.URL+PeerPathSessions, "tok", `{"streams":1,"duration_ms":100,"cases":1}`); resp.StatusCode != http.StatusCreated {
		t.Fatalf("open: HTTP %d %s", resp.StatusCode, body)
	}
	r.mu.Lock()
	r.sess.timer.Reset(10 * time.Millisecond)
	r.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		s := r.sess
		r.mu.Unlock()
		if s == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the session outlived its deadline")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case running <- struct{}{}:
		<-running
	default:
		t.Error("the expired session still holds the node")
	}
}

func TestPeerOptionsChecked(t *testing.T) {
	for _, o := range []PeerOptions{
		{Streams: MaxPeerStreams + 1},
		{Duration: time.Hour},
		{Directions: []string{"up"}},
		{Cases: []string{"underlay"}},
	} {
		if _, err := NewPeerClient(o); err == nil {
			t.Errorf("NewPeerClient(%+v) took it", o)
		}
	}
	c, err := NewPeerClient(PeerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.o.Cases) != 4 || len(c.o.Directions) != 2 || c.o.Streams < 2 {
		t.Errorf("defaults: %+v", c.o)
	}
}

func TestMeasurementKeepsCases(t *testing.T) {
	r := PeerResult{Peer: "b", Address: "10.0.0.2", Device: "flannel.1", TunnelMTU: 1450, Cases: []PeerCaseResult{
		{PeerCase: detect.PeerCase{Name: detect.PeerCaseOffloadOn, Direction: detect.PeerSend, BitsPerSecond: 1e8, Bottleneck: "x"}, Bytes: 5},
		{PeerCase: detect.PeerCase{Name: detect.PeerCaseOffloadOff, Direction: detect.PeerSend, BitsPerSecond: 4e9}},
	}}
	on, off, ok := r.Measurement().OffloadEffect()
	if !ok || on != 1e8 || off != 4e9 {
		t.Errorf("OffloadEffect = %v, %v, %t", on, off, ok)
	}
	// Without the MTU the device was measured at, the rules cannot use it.
	if m := r.Measurement(); m.MTU != 1450 || m.Device != "flannel.1" {
		t.Errorf("Measurement() device %q MTU %d, want flannel.1 at 1450", m.Device, m.MTU)
	}
	var sb strings.Builder
	if err := WritePeerText(&sb, r); err != nil || !strings.Contains(sb.String(), "offload HURTS") {
		t.Errorf("text does not say offload hurts: %v\n%s", err, sb.String())
	}
}

// TestNodeTunnelSkipsPeerTunnels: a temporary tunnel of a peer
// measurement, up while one runs, is never taken for the CNI's.
func TestNodeTunnelSkipsPeerTunnels(t *testing.T) {
	ts := detect.Tunnels{Devices: []detect.Tunnel{
		{Name: "ntpm-4242", Kind: detect.KindVXLAN, Up: true},
		{Name: "ntpr-17", Kind: detect.KindVXLAN, Up: true},
		{Name: "flannel.1", Kind: detect.KindVXLAN, Up: true},
	}}
	if got, ok := NodeTunnel(ts, ""); !ok || got.Name != "flannel.1" {
		t.Errorf("NodeTunnel = %q, %t; want flannel.1", got.Name, ok)
	}
	if got, ok := NodeTunnel(ts, "ntpr-17"); !ok || got.Name != "ntpr-17" {
		t.Errorf("NodeTunnel by name = %q, %t", got.Name, ok)
	}
}

func FuzzPeerURL(f *testing.F) {
	for _, s := range []string{"10.0.0.2", "node-b:1234", "fd00::2", "[fd00::2]:99", "h:0", ":", "[::1", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		base, host, err := peerURL(s, false)
		if err != nil {
			return
		}
		if host == "" || !strings.HasPrefix(base, "http://") {
			t.Fatalf("peerURL(%q) = %q, %q", s, base, host)
		}
	})
}

func FuzzDevicePID(f *testing.F) {
	for _, s := range []string{"ntpr-1", "ntpm-4194304", "ntpr--1", "ntpr-+1", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if pid, ok := devicePID(s); ok && pid <= 0 {
			t.Fatalf("devicePID(%q) = %d", s, pid)
		}
	})
}

// TestHasToken: a token file takes part in peer measurement only once it
// holds a token.
func TestHasToken(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		tokenFile(t, "tok"): true, empty: false, filepath.Join(dir, "absent"): false, "": false,
	} {
		if got := HasToken(path); got != want {
			t.Errorf("HasToken(%q) = %t, want %t", path, got, want)
		}
	}
}
