package probes

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
)

func snmpFiles(udp, udp6 int) map[string]string {
	files := maps.Clone(counterFiles)
	files["1/net/snmp"] = fmt.Sprintf("Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\nUdp: 1 2 3 4 5 6 %d 8 9\n", udp)
	if udp6 >= 0 {
		files["1/net/snmp6"] = fmt.Sprintf("Udp6InDatagrams                 \t10\nUdp6NoPorts                     \t0\nUdp6InErrors                    \t0\nUdp6OutDatagrams                \t10\nUdp6InCsumErrors                \t%d\n", udp6)
	}
	return files
}

// TestUDP6Counters: Udp6InCsumErrors comes from snmp6; a kernel without
// IPv6 has no snmp6, which is "not supported", not a failed probe.
func TestUDP6Counters(t *testing.T) {
	s := rates(procTree(t, snmpFiles(7, 4)))
	if s.UDP.InCsumErrors6 != 4 || s.UDP.Err6.Failed() {
		t.Errorf("udp6 = %d (%v), want 4", s.UDP.InCsumErrors6, s.UDP.Err6)
	}
	h := procTree(t, snmpFiles(7, -1))
	s = rates(h)
	if !errors.Is(s.UDP.Err6, detect.ErrNotSupported) || s.UDP.Readable() != nil {
		t.Errorf("without snmp6: err6 %v, readable %v", s.UDP.Err6, s.UDP.Readable())
	}
	if err := h.sample(time.Unix(0, 0)).err(); err.Failed() {
		t.Errorf("a kernel without IPv6 fails the counters probe: %v", err)
	}
}

// recorder is a PacketCapture that counts its calls.
type recorder struct {
	calls int
	pkts  [][]byte
	err   error
}

func (r *recorder) CaptureUDP(_ context.Context, _ time.Duration, _ int, each func([]byte), mark func()) (bool, error) {
	r.calls++
	if r.err != nil {
		return false, r.err
	}
	mark()
	for _, p := range r.pkts {
		each(p)
	}
	mark()
	return false, nil
}

// TestSnapshotCapturesOnlyWhenCountersRise: the capture runs when the
// checksum error counters rose over the window, and never otherwise, so it
// costs nothing in steady state.
func TestSnapshotCapturesOnlyWhenCountersRise(t *testing.T) {
	for _, tt := range []struct {
		name            string
		before, after   int
		before6, after6 int
		calls           int
	}{
		{"quiet", 5, 5, 1, 1, 0},
		{"IPv4 rose", 5, 9, 1, 1, 1},
		{"IPv6 rose", 5, 5, 1, 3, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := procTree(t, snmpFiles(tt.after, tt.after6))
			h.Netlink, h.Ethtool, h.KubeProxyURL = &interrupting{}, noFeatures{}, ""
			rec := &recorder{}
			h.Capture = rec
			p := NewProber(h)
			p.Baseline(procTree(t, snmpFiles(tt.before, tt.before6)))
			s, err := p.Snapshot(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if rec.calls != tt.calls {
				t.Errorf("capture ran %d times, want %d", rec.calls, tt.calls)
			}
			if (s.UDP.Capture != nil) != (tt.calls > 0) {
				t.Errorf("capture in snapshot: %+v", s.UDP.Capture)
			}
		})
	}
}

// TestSnapshotUnattributedWithoutCapture: with no capture (no CAP_NET_RAW)
// a rise is unattributed, with the reason.
func TestSnapshotUnattributedWithoutCapture(t *testing.T) {
	for _, capture := range []PacketCapture{nil, &recorder{err: fmt.Errorf("opening a packet socket: %w", detect.ErrPermission)}} {
		h := procTree(t, snmpFiles(9, -1))
		h.Netlink, h.Ethtool, h.KubeProxyURL, h.Capture = &interrupting{}, noFeatures{}, "", capture
		p := NewProber(h)
		p.Baseline(procTree(t, snmpFiles(5, -1)))
		s, err := p.Snapshot(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if v := s.UDP.ChecksumVerdict(); v != detect.AttrUnattributed || !s.UDP.Capture.Err.Failed() {
			t.Errorf("verdict %s, capture %+v; want unattributed with a reason", v, s.UDP.Capture)
		}
	}
}

// TestQuietForAccumulates: the counters' quiet spell grows over windows
// without an unexplained rise, survives a rise traced to other ports, and
// ends at any other rise, including one whose capture saw fewer bad
// packets than the kernel counted meanwhile.
func TestQuietForAccumulates(t *testing.T) {
	p := &Prober{}
	t0 := time.Unix(1000, 0)
	other := &detect.ChecksumCapture{OtherBad: 1}
	steps := []struct {
		u    detect.UDP
		want time.Duration
	}{
		{detect.UDP{}, time.Second},
		{detect.UDP{}, 2 * time.Second},
		{detect.UDP{Delta: 1, Capture: other}, 3 * time.Second},
		{detect.UDP{Delta: 1}, 0},
		{detect.UDP{}, time.Second},
		{detect.UDP{Delta: 9, Capture: &detect.ChecksumCapture{OtherBad: 1, CounterDelta: 8}}, 0},
		{detect.UDP{}, time.Second},
		{detect.UDP{Err: detect.Fail(detect.ErrPermission)}, 0},
	}
	for i, st := range steps {
		u := st.u
		p.trackQuiet(&u, t0.Add(time.Duration(i)*time.Second), t0.Add(time.Duration(i+1)*time.Second))
		if u.QuietFor != st.want {
			t.Errorf("step %d: quiet for %s, want %s", i, u.QuietFor, st.want)
		}
	}
}

// countingCapture is a PacketCapture on a fixture tree whose checksum error
// counter also rises outside the capture: one bad datagram counted before
// the capture listens and one after its time is up, which it never sees.
type countingCapture struct {
	t    *testing.T
	snmp string
	n    int
	pkts [][]byte
}

func (c *countingCapture) count(by int) {
	c.n += by
	files := snmpFiles(c.n, -1)
	if err := os.WriteFile(c.snmp, []byte(files["1/net/snmp"]), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func (c *countingCapture) CaptureUDP(_ context.Context, _ time.Duration, _ int, each func([]byte), mark func()) (bool, error) {
	c.count(1) // before the socket listens
	mark()
	c.count(len(c.pkts))
	for _, p := range c.pkts {
		each(p)
	}
	mark()
	c.count(1) // after the time is up
	return false, nil
}

// badJunk is an IPv4 UDP datagram from 198.51.100.9:5353 to port 9999 with
// a checksum that does not verify.
func badJunk(t *testing.T) []byte {
	pkt := []byte{
		0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 51, 100, 9, 10, 0, 0, 2,
		0x14, 0xe9, 0x27, 0x0f, 0, 12, 0x12, 0x34, 'j', 'u', 'n', 'k',
	}
	if d, err := VerifyUDP(pkt); err != nil || d.Valid {
		t.Fatalf("the junk datagram verifies: %+v, %v", d, err)
	}
	return pkt
}

// TestCaptureCountsOnlyWhatItCouldSee: the counter rise a capture is
// compared with is read at its marks, so errors counted before it listened
// or after its time was up do not make a fully seen rise look partly
// unseen (and so unattributed).
func TestCaptureCountsOnlyWhatItCouldSee(t *testing.T) {
	h, root := procTreeDir(t, snmpFiles(9, -1))
	h.Netlink, h.Ethtool, h.KubeProxyURL = &interrupting{}, noFeatures{}, ""
	c := &countingCapture{t: t, snmp: filepath.Join(root, "1/net/snmp"), n: 9, pkts: [][]byte{badJunk(t), badJunk(t), badJunk(t)}}
	h.Capture = c
	p := NewProber(h)
	p.Baseline(procTree(t, snmpFiles(5, -1)))
	s, err := p.Snapshot(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.UDP.Capture; got == nil || got.CounterDelta != 3 || got.OtherBad != 3 {
		t.Fatalf("capture %+v: want 3 counted and 3 seen", got)
	}
	if v := s.UDP.ChecksumVerdict(); v != detect.AttrOther {
		t.Errorf("verdict %s, want other", v)
	}
}
