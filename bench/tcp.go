package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodetune/nodetune/testbed"
)

// blockSize is the size of each write and read, iperf3's default for TCP.
const blockSize = 128 << 10

// dialTimeout bounds connecting through a path that may be broken.
const dialTimeout = 5 * time.Second

// flow is a TCP throughput test from one side of a testbed to an address
// on the other.
type flow struct {
	from, to *testbed.Side
	dst      netip.Addr
	streams  int
	warmup   time.Duration
	duration time.Duration
}

// measure runs f and returns the payload bytes the receiver got while
// measuring, and for how long it measured. Sockets are created inside the
// namespaces and then driven from ordinary goroutines; every goroutine
// and socket is gone when it returns.
func (f flow) measure(ctx context.Context) (int64, time.Duration, error) {
	var ln net.Listener
	if err := f.to.Do(func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(f.dst, 0).String())
		return err
	}); err != nil {
		return 0, 0, fmt.Errorf("listening on %s in %s: %w", f.dst, f.to.NS, err)
	}
	var received atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	defer func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()

	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // the listener was closed
			}
			track(c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				receive(c, &received)
			}()
		}
	}()

	var dialed []net.Conn
	err := f.from.Do(func() error {
		d := net.Dialer{Timeout: dialTimeout}
		for range f.streams {
			c, err := d.DialContext(ctx, "tcp4", ln.Addr().String())
			if err != nil {
				return err
			}
			// Go turns Nagle's algorithm off on every TCP socket; iperf3,
			// and most bulk senders, leave it on, and it changes how the
			// writes are cut into TSO segments. Measure what they see.
			if err := c.(*net.TCPConn).SetNoDelay(false); err != nil {
				c.Close()
				return err
			}
			dialed = append(dialed, c)
		}
		return nil
	})
	for _, c := range dialed {
		track(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			send(c)
		}()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("connecting from %s to %s: %w", f.from.NS, ln.Addr(), err)
	}

	if err := sleep(ctx, f.warmup); err != nil {
		return 0, 0, err
	}
	start, before := time.Now(), received.Load()
	if err := sleep(ctx, f.duration); err != nil {
		return 0, 0, err
	}
	elapsed, got := time.Since(start), received.Load()-before
	if got == 0 {
		return 0, elapsed, fmt.Errorf("no data reached %s from %s in %s", f.dst, f.from.NS, elapsed.Round(time.Millisecond))
	}
	return got, elapsed, nil
}

// send writes blocks to c until c is closed.
func send(c net.Conn) {
	buf := make([]byte, blockSize)
	for i := range buf {
		buf[i] = byte(i) // not all zeros, like iperf3's random payload
	}
	for {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// receive reads c until it is closed, counting the bytes into total.
func receive(c net.Conn, total *atomic.Int64) {
	buf := make([]byte, blockSize)
	for {
		n, err := c.Read(buf)
		total.Add(int64(n))
		if err != nil {
			return // EOF, or the socket closed at the end of the case
		}
	}
}

// sleep waits d, or returns the context's error if it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
