package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/report"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// doctorIn runs `nodetune doctor` inside ns, as an operator would with
// `ip netns exec`, and returns its output and exit code.
func doctorIn(t *testing.T, ns string, args ...string) (string, int) {
	t.Helper()
	argv := append([]string{"netns", "exec", ns, nodetuneBinary(t), "doctor", "--window", "200ms"}, args...)
	cmd := exec.Command("ip", argv...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee) && ee.ExitCode() <= exitCritical:
		return out.String(), ee.ExitCode()
	}
	t.Fatalf("ip %s: %v\n%s%s", strings.Join(argv, " "), err, out.String(), stderr.String())
	return "", 0
}

func doctorJSON(t *testing.T, ns string) (report.Document, int) {
	t.Helper()
	out, code := doctorIn(t, ns, "-o", "json")
	var doc report.Document
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("doctor -o json: %v\n%s", err, out)
	}
	if want := verdict(doc.Findings); want != code {
		t.Errorf("exit code %d does not match the findings' verdict %d", code, want)
	}
	return doc, code
}

func findingFor(doc report.Document, rule, subject string) *rules.Finding {
	for i, f := range doc.Findings {
		if f.Rule == rule && f.Subject == subject {
			return &doc.Findings[i]
		}
	}
	return nil
}

// TestDoctorSeesTunnelOffload builds VXLAN testbeds with the device names
// of Calico, flannel, Cilium and a plain one, and checks that doctor inside
// the namespace reports tx checksum offload off, and only when it is off.
func TestDoctorSeesTunnelOffload(t *testing.T) {
	for _, name := range []string{"vxlan.calico", "flannel.1", "cilium_vxlan", "vxlan0"} {
		t.Run(name, func(t *testing.T) {
			bed := testbedtest.New(t, testbed.Options{TunnelName: name})
			a := bed.A

			doc, _ := doctorJSON(t, a.NS)
			if f := findingFor(doc, rules.TunnelTxChecksumOff, name); f != nil {
				t.Fatalf("offload is on, yet doctor reports %s: %s", f.Rule, f.Summary)
			}
			var tun *detect.Tunnel
			for i := range doc.Facts.Tunnels.Devices {
				if doc.Facts.Tunnels.Devices[i].Name == name {
					tun = &doc.Facts.Tunnels.Devices[i]
				}
			}
			if tun == nil || tun.Kind != detect.KindVXLAN || tun.Underlay == nil || tun.Underlay.Name != a.Underlay {
				t.Fatalf("doctor's view of %s: %+v", name, tun)
			}
			if on, _ := tun.Features.Has(detect.FeatureTxChecksumGeneric); !on {
				t.Fatalf("doctor reads tx-checksum-ip-generic off on a fresh device: %+v", tun.Features)
			}

			if err := a.SetFeatures(name, map[string]bool{detect.FeatureTxChecksumGeneric: false}); err != nil {
				t.Fatal(err)
			}
			doc, code := doctorJSON(t, a.NS)
			f := findingFor(doc, rules.TunnelTxChecksumOff, name)
			if f == nil {
				t.Fatalf("offload is off, but doctor found: %+v", doc.Findings)
			}
			if code < exitWarning {
				t.Errorf("exit code %d with a warning finding", code)
			}
			if want := "ethtool -K " + name + " tx-checksum-ip-generic on"; f.Fix.Command != want || !f.Fix.Auto {
				t.Errorf("fix = %+v, want the automatic %q", f.Fix, want)
			}
			if f.Impact.ThroughputLossRatio < 0.5 {
				t.Errorf("impact %+v does not say what offload off costs", f.Impact)
			}
			if name == "vxlan.calico" {
				// No calico-node runs here, but the device is Calico's: Felix
				// would revert an ethtool change, so doctor names it.
				if f.Owner == nil || f.Owner.Name != detect.OwnerFelix {
					t.Errorf("owner of vxlan.calico = %+v, want Felix", f.Owner)
				}
			}

			text, _ := doctorIn(t, a.NS)
			for _, want := range []string{"tunnel-tx-checksum-off", name, "77%", "ethtool -K " + name + " tx-checksum-ip-generic on"} {
				if !strings.Contains(text, want) {
					t.Errorf("text report lacks %q:\n%s", want, text)
				}
			}
		})
	}
}

// TestDoctorSeesConntrackFill fills a namespace's conntrack table with
// real TCP connections and checks the conntrack rules see it. The table
// limit is global, so the test lowers it and restores it.
func TestDoctorSeesConntrackFill(t *testing.T) {
	privtest.Root(t)
	nft := privtest.Tool(t, "nft")
	bed := testbedtest.New(t, testbed.Options{})
	a, b := bed.A, bed.B

	// Conntrack tracks a namespace's flows once a rule there needs it.
	cmd := exec.Command("ip", "netns", "exec", b.NS, nft, "-f", "-")
	cmd.Stdin = strings.NewReader("table inet nodetune_test {\n chain in {\n  type filter hook input priority 0;\n  ct state new counter accept\n }\n}\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	const limit, conns = 1000, 900
	privtest.SetSysctl(t, "net.netfilter.nf_conntrack_max", fmt.Sprint(limit))

	var ln net.Listener
	if err := b.Do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(b.UnderlayIP.String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	d := net.Dialer{Timeout: 2 * time.Second}
	for i := 0; i < conns; i++ {
		var c net.Conn
		if err := a.Do(func() (err error) { c, err = d.Dial("tcp", ln.Addr().String()); return err }); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
	}

	doc, code := doctorJSON(t, b.NS)
	ct := doc.Facts.Conntrack
	if !ct.Present || ct.Max != limit || ct.Count < conns {
		t.Fatalf("conntrack facts = %+v, want at least %d of %d", ct, conns, limit)
	}
	f := findingFor(doc, rules.ConntrackNearFull, "conntrack")
	if f == nil || f.Severity != rules.Warning || code < exitWarning {
		t.Fatalf("at %d/%d doctor found %+v (exit %d), want a conntrack-near-full warning", ct.Count, ct.Max, doc.Findings, code)
	}
	if len(f.Fix.Changes) != 1 || f.Fix.Changes[0].Value != fmt.Sprint(2*limit) {
		t.Errorf("fix = %+v, want one bounded doubling to %d", f.Fix, 2*limit)
	}

	// Past the limit, new flows are dropped: doctor must see the drops.
	for i := 0; i < 150; i++ {
		_ = a.Do(func() error {
			c, err := (&net.Dialer{Timeout: 20 * time.Millisecond}).Dial("tcp", ln.Addr().String())
			if err == nil {
				t.Cleanup(func() { c.Close() })
			}
			return nil
		})
	}
	doc, _ = doctorJSON(t, b.NS)
	if f := findingFor(doc, rules.ConntrackNearFull, "conntrack"); f == nil || f.Severity != rules.Critical {
		t.Errorf("with the table full, conntrack-near-full = %+v, want critical", f)
	}
	if tot := doc.Facts.Conntrack.Totals; tot.Drop+tot.EarlyDrop == 0 {
		t.Errorf("no conntrack drops counted with the table full: %+v", tot)
	}
}
