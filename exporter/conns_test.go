package exporter

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// openConns is how many connections l counts as open.
func (l *ConnLimit) openConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// TestConnLimitEvictsIdle holds many connections open against a server with
// a small limit, half of them idle after a keep-alive request and half
// silent: the server must keep no more than the limit open, and a new
// client must still be answered at once.
func TestConnLimitEvictsIdle(t *testing.T) {
	const limit, held = 8, 200
	l := NewConnLimit(limit)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") }),
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
		ConnState:         l.ConnState,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()

	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range held {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if i%2 == 0 { // one request, then idle on keep-alive
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			_, _ = bufio.NewReader(c).ReadString('\n')
		}
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("a new client is not served while %d connections are held: %v", held, err)
	}
	resp.Body.Close()
	if took := time.Since(start); took > time.Second {
		t.Errorf("a new client waited %s", took)
	}
	deadline := time.Now().Add(2 * time.Second)
	for l.openConns() > limit && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := l.openConns(); n > limit {
		t.Errorf("%d connections open, limit %d", n, limit)
	}
	if ev := l.Evicted(); ev < held-limit {
		t.Errorf("%d connections evicted, want at least %d", ev, held-limit)
	}
}
