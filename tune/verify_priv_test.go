package tune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// dropLargeTunnelPackets adds an nftables rule in s's namespace that drops
// outer UDP packets to the tunnel's port larger than mtu: an underlay that
// cannot take the large GSO packets a tunnel sends with tx checksum
// offload on. It goes with the namespace.
func dropLargeTunnelPackets(t *testing.T, s *testbed.Side, port, mtu int) {
	t.Helper()
	nft := privtest.Tool(t, "nft")
	ruleset := fmt.Sprintf("table inet ntfault {\n chain out {\n  type filter hook output priority 0; policy accept;\n  udp dport %d meta length > %d counter drop\n }\n}\n", port, mtu)
	cmd := exec.Command("ip", "netns", "exec", s.NS, nft, "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
}

// iperf3Path measures TCP from side a to b with iperf3, through the
// tunnel and over the underlay, as a peer measurement's tunnel and host
// send cases: a real measurement of the path, standing in for the peer
// measurer.
type iperf3Path struct {
	t      *testing.T
	a, b   *testbed.Side
	iperf3 string
}

func newIperf3Path(t *testing.T, a, b *testbed.Side) *iperf3Path {
	p := &iperf3Path{t: t, a: a, b: b, iperf3: privtest.Tool(t, "iperf3")}
	for _, addr := range []string{b.TunnelIP.String(), b.UnderlayIP.String()} {
		srv := exec.Command("ip", "netns", "exec", b.NS, p.iperf3, "-s", "-B", addr, "-p", "5301")
		if err := srv.Start(); err != nil {
			t.Fatalf("starting the iperf3 server: %v", err)
		}
		t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	}
	return p
}

// rate runs one iperf3 client to addr for 2 s with 2 streams.
func (p *iperf3Path) rate(ctx context.Context, addr string) (float64, error) {
	var last error
	for try := 0; try < 30; try++ { // until the server listens
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", p.a.NS, p.iperf3, "-J", "-c", addr, "-p", "5301",
			"-t", "2", "-P", "2", "--connect-timeout", "2000").Output()
		var r struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
			Error string `json:"error"`
		}
		if jerr := json.Unmarshal(out, &r); jerr == nil && r.Error == "" && err == nil {
			return r.End.SumReceived.BitsPerSecond, nil
		}
		last = fmt.Errorf("iperf3 to %s: %v %s", addr, err, r.Error)
		if strings.Contains(r.Error, "unable to connect") || strings.Contains(r.Error, "busy") {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		break
	}
	return 0, last
}

func (p *iperf3Path) measure(ctx context.Context, peer string) (detect.PeerMeasurement, error) {
	m := detect.PeerMeasurement{Peer: "b", Address: peer, Device: p.a.Tunnel}
	tc := detect.PeerCase{Name: detect.PeerCaseTunnel, Direction: detect.PeerSend}
	var err error
	if tc.BitsPerSecond, err = p.rate(ctx, p.b.TunnelIP.String()); err != nil {
		tc.Err = detect.Fail(err)
	}
	hc := detect.PeerCase{Name: detect.PeerCaseHost, Direction: detect.PeerSend}
	if hc.BitsPerSecond, err = p.rate(ctx, p.b.UnderlayIP.String()); err != nil {
		hc.Err = detect.Fail(err)
	}
	m.Cases, m.At = []detect.PeerCase{hc, tc}, time.Now()
	if hc.Err.Failed() && tc.Err.Failed() {
		return m, errors.New("neither path carried traffic")
	}
	p.t.Logf("measured: tunnel %s (%v), underlay %s", detect.Rate(tc.BitsPerSecond), tc.Err, detect.Rate(hc.BitsPerSecond))
	return m, nil
}

// TestApplyVerifiedOnAFaultyUnderlay: on the real kernel, A's underlay
// drops tunnel packets larger than its MTU. Turning A's tunnel offload on
// (its finding is auto-fixable: a kernel with the fix, no bad checksums)
// makes the tunnel send large GSO packets, which are dropped: measured
// through the tunnel with iperf3, it falls, so tune rolls the change back
// through the journal (the device is off again), keeps both figures with
// the entry and the hold, and the next plan refuses it as held.
func TestApplyVerifiedOnAFaultyUnderlay(t *testing.T) {
	bed := testbedtest.New(t, testbed.Options{})
	a, b := bed.A, bed.B
	if err := a.Ethtool().Change(a.Tunnel, map[string]bool{detect.FeatureTxChecksumGeneric: false}); err != nil {
		t.Fatal(err)
	}
	dropLargeTunnelPackets(t, a, 4789, 1500)
	before := bedFeatures(t, a)
	path := newIperf3Path(t, a, b)
	s := bedSnapshot(t, a)
	fs := rules.Evaluate(s, rules.DefaultConfig()).Findings
	dir := t.TempDir()
	tu := openTuner(t, dir, NewHost("/proc", "/sys", a.Ethtool()))
	plan := tu.Plan(s, fs, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
	if len(plan.Approved()) != 1 {
		t.Fatalf("plan: %+v", plan.Changes)
	}
	out, vs := tu.ApplyVerified(context.Background(), plan, Verifier{Peer: b.UnderlayIP.String(), Measure: path.measure, Margin: DefaultMargin})
	t.Logf("outcomes: %v", out)
	if len(vs) != 1 || vs[0].Verdict != VerdictUndone || vs[0].Err != nil {
		t.Fatalf("verification: %+v", vs)
	}
	m := vs[0].Measured
	t.Logf("%s", m)
	if m.Before < 100e6 || m.After > m.Before/10 {
		t.Errorf("measured %s: want offload off at 100 Mbit/s or more, and on a tenth of that at most", m)
	}
	if got := bedFeatures(t, a)[detect.FeatureTxChecksumGeneric]; got != before[detect.FeatureTxChecksumGeneric] {
		t.Errorf("tx checksum offload after the undo: %+v, before %+v", got, before[detect.FeatureTxChecksumGeneric])
	}
	var undone *Entry
	for _, e := range entries(t, dir) {
		if e.Key.Setting == detect.FeatureTxChecksumGeneric {
			undone = e
		}
	}
	if undone == nil || undone.State != evRestored || undone.Measured == nil || undone.Measured.After != m.After {
		t.Errorf("the journal entry: %+v", undone)
	}
	again := tu.Plan(bedSnapshot(t, a), fs, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
	if len(again.Approved()) != 0 || len(again.Refusals()) != 1 || again.Refusals()[0].Reason != ReasonHeld {
		t.Errorf("the next plan: %+v", again.Changes)
	}
}

// TestApplyVerifiedOnAHealthyUnderlay: the same change on the same kind of
// testbed without the fault measures no slower, and stays.
func TestApplyVerifiedOnAHealthyUnderlay(t *testing.T) {
	bed := testbedtest.New(t, testbed.Options{})
	a, b := bed.A, bed.B
	if err := a.Ethtool().Change(a.Tunnel, map[string]bool{detect.FeatureTxChecksumGeneric: false}); err != nil {
		t.Fatal(err)
	}
	path := newIperf3Path(t, a, b)
	s := bedSnapshot(t, a)
	tu := openTuner(t, t.TempDir(), NewHost("/proc", "/sys", a.Ethtool()))
	plan := tu.Plan(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
	_, vs := tu.ApplyVerified(context.Background(), plan, Verifier{Peer: b.UnderlayIP.String(), Measure: path.measure, Margin: DefaultMargin})
	if len(vs) != 1 || vs[0].Verdict != VerdictKept {
		t.Fatalf("verification: %+v", vs)
	}
	t.Logf("%s", vs[0].Measured)
	if !bedFeatures(t, a)[detect.FeatureTxChecksumGeneric].Active || len(tu.Holds()) != 0 {
		t.Errorf("offload on did not stay: %+v, holds %v", bedFeatures(t, a)[detect.FeatureTxChecksumGeneric], tu.Holds())
	}
}
