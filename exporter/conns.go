package exporter

import (
	"container/list"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server timeouts for nodetune's listeners (docs/serve.md, "Connections").
// Without them an idle keep-alive connection is kept for ever: 5,000 held
// open took the agent past its DaemonSet's 100 MiB limit.
const (
	// ReadHeaderTimeout bounds how long a client may take to send the
	// headers of a request (nodetune's requests have no body). There is no
	// ReadTimeout: net/http cancels a request's context when it passes,
	// which would cut a POST /bench that measures longer.
	ReadHeaderTimeout = 5 * time.Second
	// IdleTimeout closes a keep-alive connection that sent nothing for this
	// long. Prometheus reconnects at its next scrape if it was closed.
	IdleTimeout = 60 * time.Second
)

// ConnLimit keeps an http.Server to at most max open connections, so that
// memory stays bounded whoever connects. When a new connection would pass
// the limit, the connection that has been idle longest (a keep-alive
// connection between requests, or one that has not sent a byte yet) is
// closed to make room; a connection in the middle of a request is never
// cut. Only when every connection is busy is the new one closed at once.
// Unlike a limit that stops accepting, this keeps a scraper's fresh
// connection served while thousands of idle ones are held open against
// the agent. Install it with Server.ConnState = l.ConnState.
type ConnLimit struct {
	max     int
	mu      sync.Mutex
	open    int
	idle    *list.List // of net.Conn, longest idle first
	at      map[net.Conn]*list.Element
	evicted int64
}

// NewConnLimit returns a limit of max connections (at least 1).
func NewConnLimit(max int) *ConnLimit {
	return &ConnLimit{max: max, idle: list.New(), at: map[net.Conn]*list.Element{}}
}

// ConnState is the http.Server hook that counts and evicts connections.
func (l *ConnLimit) ConnState(c net.Conn, s http.ConnState) {
	var victim net.Conn
	l.mu.Lock()
	switch s {
	case http.StateNew:
		l.open++
		l.at[c] = l.idle.PushBack(c)
		if l.open > l.max {
			if front := l.idle.Front(); front != nil {
				victim = front.Value.(net.Conn)
				l.forget(victim)
				l.evicted++
			}
		}
	case http.StateActive:
		l.forget(c)
	case http.StateIdle:
		if _, ok := l.at[c]; !ok {
			l.at[c] = l.idle.PushBack(c)
		}
	case http.StateHijacked, http.StateClosed:
		l.forget(c)
		l.open--
	}
	l.mu.Unlock()
	if victim != nil {
		closeNow(victim)
	}
}

// Evicted is how many connections the limit closed to make room.
func (l *ConnLimit) Evicted() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.evicted
}

func (l *ConnLimit) forget(c net.Conn) {
	if e, ok := l.at[c]; ok {
		l.idle.Remove(e)
		delete(l.at, c)
	}
}

// closeNow closes c's socket without a TLS close_notify, which could wait
// on a client that reads nothing.
func closeNow(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	_ = c.Close()
}
