package probestest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"
)

// Capture is a PacketCapture that replays packets captured on a node.
type Capture struct {
	Packets [][]byte
	// Err, when set, is what every capture returns, as a host without
	// CAP_NET_RAW would.
	Err error
}

// LoadCapture reads capture/packets.txt: one packet per line, from its IP
// header on, in hex; blank lines and lines starting with # are skipped.
func LoadCapture(path string) (*Capture, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &Capture{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pkt, err := hex.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		c.Packets = append(c.Packets, pkt)
	}
	return c, sc.Err()
}

// CaptureUDP hands each replayed packet to each, up to limit, between its
// two marks.
func (c *Capture) CaptureUDP(ctx context.Context, d time.Duration, limit int, each func(pkt []byte), mark func()) (bool, error) {
	if c.Err != nil {
		return false, c.Err
	}
	mark()
	for i, p := range c.Packets {
		if i >= limit {
			return true, nil
		}
		each(p)
	}
	mark()
	return false, nil
}
