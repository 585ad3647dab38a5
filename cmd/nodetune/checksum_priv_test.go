package main

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/probes/probestest"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// TestDoctorTracesBadChecksums sends real datagrams with bad UDP checksums
// from one testbed namespace to the other, to its VXLAN port or to an
// unrelated port, while doctor runs in the receiver. The two verdicts
// differ: bad tunnel packets make tunnel-tx-checksum-unsafe name the peer
// (critical, not automatic: this kernel has the NAT fix, so the evidence is
// about the sender); bad packets to another port make only
// udp-checksum-errors, naming the sender and port, with no offload verdict.
func TestDoctorTracesBadChecksums(t *testing.T) {
	for _, tt := range []struct {
		name  string
		port  uint16
		rule  string
		other string
	}{
		{"tunnel port", 4789, rules.TunnelTxChecksumUnsafe, rules.UDPChecksumErrors},
		{"other port", 9999, rules.UDPChecksumErrors, rules.TunnelTxChecksumUnsafe},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bed := testbedtest.New(t, testbed.Options{})
			a, b := bed.A, bed.B
			var conn *net.IPConn
			if err := a.Do(func() (err error) {
				conn, err = net.ListenIP("ip4:udp", &net.IPAddr{IP: a.UnderlayIP.AsSlice()})
				return err
			}); err != nil {
				t.Fatalf("raw socket in %s: %v", a.NS, err)
			}
			defer conn.Close()
			seg := probestest.UDPSegment(a.UnderlayIP, b.UnderlayIP, 40000, tt.port, []byte("corrupted on the way"), probestest.BadChecksum)

			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				tick := time.NewTicker(5 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := conn.WriteToIP(seg, &net.IPAddr{IP: b.UnderlayIP.AsSlice()}); err != nil {
							t.Errorf("sending: %v", err)
							return
						}
					}
				}
			})
			doc, _ := doctorJSON(t, b.NS)
			close(stop)
			wg.Wait()

			if doc.Facts.UDP.Delta == 0 {
				t.Fatalf("Udp InCsumErrors did not rise in the receiver: %+v", doc.Facts.UDP)
			}
			c := doc.Facts.UDP.Capture
			if c == nil || c.Err.Failed() || len(c.Sources) == 0 || c.Sources[0].Addr != a.UnderlayIP || c.Sources[0].DstPort != tt.port {
				t.Fatalf("capture %+v: want the sender %s to port %d", c, a.UnderlayIP, tt.port)
			}
			subject := "udp"
			if tt.rule == rules.TunnelTxChecksumUnsafe {
				subject = b.Tunnel
			}
			f := findingFor(doc, tt.rule, subject)
			if f == nil {
				t.Fatalf("no %s finding: %+v", tt.rule, doc.Findings)
			}
			if !strings.Contains(f.Summary, a.UnderlayIP.String()) {
				t.Errorf("%s does not name the sender %s: %s", tt.rule, a.UnderlayIP, f.Summary)
			}
			if f.Fix.Auto {
				t.Errorf("%s is automatic on evidence about another node: %+v", tt.rule, f.Fix)
			}
			if tt.rule == rules.TunnelTxChecksumUnsafe && f.Severity != rules.Critical {
				t.Errorf("%s severity %s, want critical", tt.rule, f.Severity)
			}
			for _, g := range doc.Findings {
				if g.Rule == tt.other || g.Fix.Auto && g.Rule == rules.TunnelTxChecksumUnsafe {
					t.Errorf("unexpected finding %s %s: %s", g.Rule, g.Subject, g.Summary)
				}
			}
			if v := doc.Facts.UDP.ChecksumVerdict(); (v == detect.AttrTunnel) != (tt.port == 4789) {
				t.Errorf("attribution %s for port %d", v, tt.port)
			}
		})
	}
}
