package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/probes/probestest"
	"github.com/nodetune/nodetune/report"
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
			stop := sendBadChecksums(t, a, b, tt.port)
			doc, _ := doctorJSON(t, b.NS)
			stop()

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

// sendBadChecksums sends a datagram with a bad UDP checksum from a to b's
// port every 5 ms, from a raw socket in a, until the returned func is called.
func sendBadChecksums(t testing.TB, a, b *testbed.Side, port uint16) func() {
	t.Helper()
	var conn *net.IPConn
	if err := a.Do(func() (err error) {
		conn, err = net.ListenIP("ip4:udp", &net.IPAddr{IP: a.UnderlayIP.AsSlice()})
		return err
	}); err != nil {
		t.Fatalf("raw socket in %s: %v", a.NS, err)
	}
	seg := probestest.UDPSegment(a.UnderlayIP, b.UnderlayIP, 40000, port, []byte("corrupted on the way"), probestest.BadChecksum)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if _, err := conn.WriteToIP(seg, &net.IPAddr{IP: b.UnderlayIP.AsSlice()}); err != nil {
					t.Errorf("sending: %v", err)
					return
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		conn.Close()
	}
}

// TestDoctorWithoutCapNetRaw: where nodetune cannot open a packet socket,
// bad tunnel packets are unattributed: udp-checksum-errors says so and
// why, and no offload verdict, automatic or not, rests on them.
func TestDoctorWithoutCapNetRaw(t *testing.T) {
	setpriv := privtest.Tool(t, "setpriv")
	bed := testbedtest.New(t, testbed.Options{})
	stop := sendBadChecksums(t, bed.A, bed.B, 4789)
	argv := []string{"netns", "exec", bed.B.NS, setpriv, "--bounding-set", "-net_raw", "--inh-caps", "-net_raw",
		nodetuneBinary(t), "doctor", "--window", "200ms", "-o", "json"}
	out, err := exec.Command("ip", argv...).Output()
	stop()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("ip %s: %v", strings.Join(argv, " "), err)
	}
	var doc report.Document
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("doctor -o json: %v\n%s", err, out)
	}
	if v := doc.Facts.UDP.ChecksumVerdict(); v != detect.AttrUnattributed {
		t.Fatalf("attribution %s, want unattributed: %+v", v, doc.Facts.UDP)
	}
	if c := doc.Facts.UDP.Capture; c == nil || !strings.Contains(c.Err.Error(), "permission denied") {
		t.Errorf("the capture should say it lacked permission: %+v", c)
	}
	f := findingFor(doc, rules.UDPChecksumErrors, "udp")
	if f == nil || f.Fix.Auto || !strings.Contains(f.Summary, "unattributed") {
		t.Errorf("want an unattributed udp-checksum-errors finding, got %+v", f)
	}
	for _, g := range doc.Findings {
		if g.Rule == rules.TunnelTxChecksumUnsafe || g.Fix.Auto {
			t.Errorf("finding on unattributed evidence: %s %s auto=%v", g.Rule, g.Subject, g.Fix.Auto)
		}
	}
}

// TestServeNamesBadChecksumSenders runs serve in remediate mode on the
// receiving side while the other sends tunnel packets with bad outer
// checksums: the metrics name the sender and the tunnel, and nodetune
// leaves the tunnel's offload alone, since the evidence is about the
// sender and this kernel has the NAT fix.
func TestServeNamesBadChecksumSenders(t *testing.T) {
	privtest.Root(t)
	bin := nodetuneBinary(t)
	bed := testbedtest.New(t, testbed.Options{})
	b := bed.B
	startIn(t, b.NS, bin, "serve", "--mode=remediate", "--state-dir="+t.TempDir(), "--web.listen-address="+serveAddr,
		"--probe.interval=1s", "--probe.window=200ms", "--kube-proxy.url=")
	client := nsClient(b)
	eventually(t, 10*time.Second, "nodetune /readyz", func() error {
		_, err := getBody(client, "http://"+serveAddr+"/readyz")
		return err
	})
	stop := sendBadChecksums(t, bed.A, b, 4789)
	defer stop()
	sender := `nodetune_udp_bad_checksum_packets{destination_port="4789",source="` + bed.A.UnderlayIP.String() + `",tunnel="` + b.Tunnel + `"}`
	eventually(t, 15*time.Second, "the sender in the metrics", func() error {
		if v := metricValue(t, client, sender); v <= 0 {
			return fmt.Errorf("%s = %v", sender, v)
		}
		if v := metricValue(t, client, `nodetune_udp_checksum_attribution{attribution="tunnel"}`); v != 1 {
			return fmt.Errorf("attribution tunnel = %v", v)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // more probe cycles, with remediation on
	f, err := b.Features(b.Tunnel)
	if err != nil {
		t.Fatal(err)
	}
	if !f[detect.FeatureTxChecksumGeneric] {
		t.Errorf("serve turned tx checksum offload off on evidence about another node")
	}
}
