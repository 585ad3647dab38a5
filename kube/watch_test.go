package kube

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestWatch drives a Watch through a fake API server: list, watch events,
// a watch that ends (watched again from the last version, not listed), a
// 410 Expired (listed anew), a deleted object, and a bookmark.
func TestWatch(t *testing.T) {
	nodeJSON := func(rv, mode string) string {
		return fmt.Sprintf(`{"kind":"Node","metadata":{"name":"n","resourceVersion":%q,"labels":{"nodetune.io/mode":%q}}}`, rv, mode)
	}
	var mu sync.Mutex
	var requests []string
	step := make(chan struct{}) // the test lets each watch answer go on
	cfg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mu.Lock()
		req := fmt.Sprintf("%s %s watch=%s rv=%s", r.URL.Path, q.Get("fieldSelector"), q.Get("watch"), q.Get("resourceVersion"))
		requests = append(requests, req)
		n := len(requests)
		mu.Unlock()
		fl := w.(http.Flusher)
		send := func(typ, obj string) {
			fmt.Fprintf(w, `{"type":%q,"object":%s}`+"\n", typ, obj)
			fl.Flush()
		}
		switch n {
		case 1: // list
			fmt.Fprintf(w, `{"kind":"NodeList","metadata":{"resourceVersion":"1"},"items":[%s]}`, nodeJSON("1", "observe"))
		case 2: // watch from 1: a change, then the stream ends
			send("MODIFIED", nodeJSON("2", "remediate"))
			<-step
			send("BOOKMARK", `{"kind":"Node","metadata":{"resourceVersion":"3"}}`)
		case 3: // watch from 3: too old
			send("ERROR", `{"kind":"Status","status":"Failure","reason":"Expired","code":410,"message":"too old resource version: 3 (7)"}`)
		case 4: // list anew
			fmt.Fprintf(w, `{"kind":"NodeList","metadata":{"resourceVersion":"7"},"items":[%s]}`, nodeJSON("7", "bad"))
		case 5: // watch from 7: deleted, then nothing until the test ends
			<-step
			send("DELETED", nodeJSON("8", "bad"))
			<-r.Context().Done()
		default:
			<-r.Context().Done()
		}
	})
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatch[node](c, Path("", "v1", "", "nodes", ""), "n", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	select {
	case <-w.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("no sync")
	}
	mode := func() string {
		n, ok := w.Get()
		if !ok {
			return "<none>"
		}
		return n.Labels[ModeLabel]
	}
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for mode() != want {
			if time.Now().After(deadline) {
				t.Fatalf("mode %s, want %s", mode(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("remediate")
	step <- struct{}{}
	waitFor("bad")
	step <- struct{}{}
	waitFor("<none>")
	cancel()
	<-done
	want := []string{
		"/api/v1/nodes metadata.name=n watch= rv=",
		"/api/v1/nodes metadata.name=n watch=true rv=1",
		"/api/v1/nodes metadata.name=n watch=true rv=3",
		"/api/v1/nodes metadata.name=n watch= rv=",
		"/api/v1/nodes metadata.name=n watch=true rv=7",
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, requests); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// TestWatchBackoff: a failing list is tried again after the back-off, not
// in a busy loop.
func TestWatchBackoff(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	cfg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"kind":"Status","reason":"Forbidden","code":403}`)
	})
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatch[node](c, "/api/v1/nodes", "n", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	w.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	// At 0, 0.8 s (and 2.4 s, past the end).
	if calls != 2 {
		t.Errorf("%d lists in 1.5 s, want 2", calls)
	}
	select {
	case <-w.Synced():
		t.Error("synced without a list")
	default:
	}
}

// TestWatchGoneAnswer: a watch request answered 410 itself (not with an
// ERROR event) lists anew at once.
func TestWatchGoneAnswer(t *testing.T) {
	var mu sync.Mutex
	var requests []string
	cfg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, "watch="+r.URL.Query().Get("watch")+" rv="+r.URL.Query().Get("resourceVersion"))
		n := len(requests)
		mu.Unlock()
		switch {
		case r.URL.Query().Get("watch") == "":
			fmt.Fprintf(w, `{"metadata":{"resourceVersion":"%d"},"items":[]}`, n)
		case n == 2:
			w.WriteHeader(http.StatusGone)
			io.WriteString(w, `{"kind":"Status","reason":"Expired","code":410,"message":"too old"}`)
		default:
			<-r.Context().Done()
		}
	})
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatch[node](c, "/api/v1/nodes", "n", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	w.Run(ctx) // no back-off after the 410: all within 500 ms
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"watch= rv=", "watch=true rv=1", "watch= rv=", "watch=true rv=3"}, requests); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if _, ok := w.Get(); ok {
		t.Error("an object that was never listed")
	}
}

// TestWatchShortClose: a watch the server ends at once with no event is a
// failure and backs off, as client-go's reflector does, rather than
// watching again in a busy loop that spends the rate limit the condition
// updates share.
func TestWatchShortClose(t *testing.T) {
	var mu sync.Mutex
	watches := 0
	cfg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("watch") == "" {
			io.WriteString(w, `{"metadata":{"resourceVersion":"1"},"items":[]}`)
			return
		}
		mu.Lock()
		watches++
		mu.Unlock()
	})
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatch[node](c, "/api/v1/nodes", "n", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	w.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	// At 0 and 0.8 s (and 2.4 s, past the end).
	if watches > 2 {
		t.Errorf("%d watches in 1.5 s, want 2", watches)
	}
}

// TestWatchEventBounded: one watch event larger than maxAnswer is refused
// instead of decoded into memory.
func TestWatchEventBounded(t *testing.T) {
	big := `{"type":"ADDED","object":{"metadata":{"name":"n","resourceVersion":"2","annotations":{"a":"` + strings.Repeat("x", maxAnswer) + `"}}}}` + "\n"
	cfg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("watch") == "" {
			io.WriteString(w, `{"metadata":{"resourceVersion":"1"},"items":[]}`)
			return
		}
		io.WriteString(w, big)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatch[node](c, "/api/v1/nodes", "n", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := w.watch(ctx, "1"); !errors.Is(err, ErrAnswerTooLarge) {
		t.Errorf("a %d-byte event: %v, want ErrAnswerTooLarge", len(big), err)
	}
	if _, ok := w.Get(); ok {
		t.Error("the oversized object was taken into the cache")
	}
}

// blackHole forwards TCP connections to addr until freeze is called;
// after it, the connections stay open and everything sent on them is
// dropped, as when a node loses its route to the API server or a
// conntrack entry on the way expires.
type blackHole struct {
	ln     net.Listener
	frozen atomic.Bool
}

func newBlackHole(t *testing.T, addr string) *blackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackHole{ln: ln}
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			if !b.frozen.Load() {
				dst.Write(buf[:n])
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			go pipe(s, c)
			go pipe(c, s)
		}
	}()
	return b
}

// TestWatchDeadConnection: a watch over HTTP/2 whose connection goes
// silent (no RST, no FIN) ends with an error after the health check's
// ping goes unanswered, instead of waiting for TCP to give up, which
// takes up to 15 minutes while a request's data is unacknowledged.
func TestWatchDeadConnection(t *testing.T) {
	defer func(idle, ping time.Duration) { h2ReadIdle, h2PingTimeout = idle, ping }(h2ReadIdle, h2PingTimeout)
	h2ReadIdle, h2PingTimeout = 300*time.Millisecond, 300*time.Millisecond
	started := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		started <- struct{}{}
		<-r.Context().Done()
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	hole := newBlackHole(t, srv.Listener.Addr().String())
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c, err := NewClient(&Config{Host: "https://" + hole.ln.Addr().String(), CAData: ca})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatch[node](c, "/api/v1/nodes", "n", nil)
	// Without the health check the watch would hang until this context
	// ends; with it, the connection is declared lost after 0.6 s here. The
	// context is long so that a loaded machine does not fail the test: it
	// checks that the connection's loss ended the watch, not how fast.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		<-started
		time.Sleep(200 * time.Millisecond) // the headers reach the client
		hole.frozen.Store(true)
	}()
	start := time.Now()
	_, err = w.watch(ctx, "1")
	if err == nil || ctx.Err() != nil {
		t.Errorf("a watch on a dead connection ended after %s with %v (context: %v); want the lost connection to end it", time.Since(start).Round(time.Millisecond), err, ctx.Err())
	}
}
