package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// streamsEnd is one end of a peer case's TCP streams: it either sends
// blocks on each stream or receives and counts them. Every goroutine and
// socket is gone once close returns.
type streamsEnd struct {
	sender   bool
	received atomic.Int64

	ln     net.Listener
	mu     sync.Mutex
	closed bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

// start drives c from now on.
func (e *streamsEnd) start(c net.Conn) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		c.Close()
		return
	}
	e.conns = append(e.conns, c)
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		if e.sender {
			send(c)
		} else {
			receive(c, &e.received)
		}
	}()
}

// listenStreams opens a TCP port on addr that takes at most streams
// connections, and only from the addresses in from; any other is closed
// at once.
func listenStreams(addr netip.Addr, from []netip.Addr, streams int, sender bool) (*streamsEnd, error) {
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		return nil, fmt.Errorf("opening a data port on %s: %w", addr, err)
	}
	e := &streamsEnd{sender: sender, ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		taken := 0
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			ap, perr := netip.ParseAddrPort(c.RemoteAddr().String())
			if perr != nil || !slices.Contains(from, ap.Addr().Unmap()) || taken >= streams {
				c.Close()
				continue
			}
			taken++
			if sender {
				// Leave Nagle on, as the measurer's own streams do.
				_ = c.(*net.TCPConn).SetNoDelay(false)
			}
			e.start(c)
		}
	}()
	return e, nil
}

// port is the listening port.
func (e *streamsEnd) port() int { return e.ln.Addr().(*net.TCPAddr).Port }

// dialStreams connects streams TCP connections to dst.
func dialStreams(ctx context.Context, dst netip.AddrPort, streams int, sender bool) (*streamsEnd, error) {
	e := &streamsEnd{sender: sender}
	d := net.Dialer{Timeout: dialTimeout}
	for range streams {
		c, err := d.DialContext(ctx, "tcp", dst.String())
		if err != nil {
			e.close()
			return nil, fmt.Errorf("connecting to %s: %w", dst, err)
		}
		// Leave Nagle on, as iperf3 and most bulk senders do (tcp.go).
		if err := c.(*net.TCPConn).SetNoDelay(false); err != nil {
			c.Close()
			e.close()
			return nil, err
		}
		e.start(c)
	}
	return e, nil
}

// close ends every stream and the listener, and waits for them.
func (e *streamsEnd) close() {
	if e.ln != nil {
		e.ln.Close()
	}
	e.mu.Lock()
	e.closed = true
	for _, c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}
