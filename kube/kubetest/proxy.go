package kubetest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy forwards every connection accepted on l to the API server, and
// returns the URL a client should use to reach the server through it. It
// is how a process in another network namespace, which has a loopback of
// its own, reaches the server: the test opens l inside that namespace.
// TLS passes through untouched; the server's certificate is valid for
// 127.0.0.1, so l should listen there. Proxy closes l when t ends.
func (c *Cluster) Proxy(t testing.TB, l net.Listener) string {
	t.Helper()
	u, err := url.Parse(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return // closed
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				track(in, true)
				defer func() { in.Close(); track(in, false) }()
				out, err := net.Dial("tcp", u.Host)
				if err != nil {
					return
				}
				track(out, true)
				defer func() { out.Close(); track(out, false) }()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
				go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return "https://" + l.Addr().String()
}
