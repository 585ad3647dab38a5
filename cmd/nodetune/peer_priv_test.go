package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nodetune/nodetune/bench"
	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// peerPort is where the responder listens in the testbed's node B.
const peerPort = "9849"

// writeToken writes a token file for the test and returns its path.
func writeToken(t testing.TB, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startResponder starts nodetune serve with the responder in b's
// namespace, listening on its underlay address, and waits until the
// responder answers from a.
func startResponder(t testing.TB, a, b *testbed.Side, tokenFile string, extra ...string) *proc {
	t.Helper()
	args := append([]string{nodetuneBinary(t), "serve", "--peer.enable", "--peer.token-file", tokenFile,
		"--peer.listen-address", b.UnderlayIP.String() + ":" + peerPort,
		"--web.listen-address", "127.0.0.1:9848", "--kube-proxy.url=", "--state-dir", t.TempDir(),
		"--probe.interval", "10s", "--log.level", "debug"}, extra...)
	p := startIn(t, b.NS, args...)
	eventually(t, 15*time.Second, "the responder answers", func() error {
		if p.cmd.ProcessState != nil {
			t.Fatalf("serve exited:\n%s", p.out.String())
		}
		c, err := a.DialContext(t.Context(), "tcp", net.JoinHostPort(b.UnderlayIP.String(), peerPort))
		if err != nil {
			return err
		}
		c.Close()
		// The metrics port too, so that tests that compare b's listening
		// sockets see all of serve's.
		if c, err = b.DialContext(t.Context(), "tcp", "127.0.0.1:9848"); err != nil {
			return err
		}
		return c.Close()
	})
	return p
}

// peerBench runs nodetune bench --peer in a's namespace against b's
// responder and returns its JSON result and the run.
func peerBench(t *testing.T, a, b *testbed.Side, tokenFile string, extra ...string) (bench.PeerResult, ntRun) {
	t.Helper()
	// The measurement is kept in a directory of the test's (extra may
	// name another): never in the host's state directory.
	args := append([]string{"bench", "--peer", b.UnderlayIP.String() + ":" + peerPort, "--peer.token-file", tokenFile,
		"-o", "json", "--duration", "1s", "--warmup", "300ms", "--streams", "2", "--kube-proxy.url=",
		"--state-dir", t.TempDir()}, extra...)
	r := nodetuneIn(t, a.NS, nil, nil, args...)
	var res bench.PeerResult
	if r.code == 0 {
		// The log goes to stderr, mixed into out; the JSON is the object
		// that starts a line with "{".
		i := strings.Index(r.out, "{\n")
		if i < 0 || json.Unmarshal([]byte(r.out[i:]), &res) != nil {
			t.Fatalf("bench --peer printed no JSON result:\n%s", r.out)
		}
	}
	return res, r
}

// peerLinks lists the temporary tunnel devices in s's namespace.
func peerLinks(t *testing.T, s *testbed.Side) []string {
	t.Helper()
	links, err := s.Netlink().LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if n := l.Attrs().Name; strings.HasPrefix(n, bench.ResponderDevicePrefix) || strings.HasPrefix(n, bench.MeasurerDevicePrefix) {
			out = append(out, n)
		}
	}
	return out
}

// listeners lists the TCP ports listening in s's namespace, from
// /proc/net/tcp as seen inside it.
func listeners(t *testing.T, s *testbed.Side) []string {
	t.Helper()
	var out []string
	err := s.Do(func() error {
		for _, f := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
			data, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(data), "\n")[1:] {
				fs := strings.Fields(line)
				if len(fs) > 3 && fs[3] == "0A" { // TCP_LISTEN
					out = append(out, fs[1])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPeerBenchFourCases: the measurer in node A and the responder in
// node B measure host, tunnel, and the temporary tunnel with offload on
// and off, in both directions, each with a figure and what limited it; both
// nodes are left with no temporary device and no data port.
func TestPeerBenchFourCases(t *testing.T) {
	bed := testbedtest.New(t, testbed.Options{})
	a, b := bed.A, bed.B
	token := writeToken(t, "s3cret-token")
	startResponder(t, a, b, token)
	before := listeners(t, b)

	res, r := peerBench(t, a, b, token)
	expectCode(t, r, exitOK, "bench --peer")
	want := map[string]bool{}
	for _, c := range []string{detect.PeerCaseHost, detect.PeerCaseTunnel, detect.PeerCaseOffloadOn, detect.PeerCaseOffloadOff} {
		for _, d := range []string{detect.PeerSend, detect.PeerReceive} {
			want[c+"/"+d] = true
		}
	}
	named := 0
	for _, c := range res.Cases {
		key := c.Name + "/" + c.Direction
		if !want[key] {
			t.Errorf("unexpected or repeated case %s", key)
		}
		delete(want, key)
		// Both ends sampled, and the bottleneck is what their usage says
		// (empty when nothing stood out: both "nodes" share this
		// machine's CPUs, busy or not with other work).
		if c.Err.Failed() || c.BitsPerSecond < 1e6 || c.Sender == nil || c.Receiver == nil || len(c.Sender.CPUs) == 0 ||
			c.Bottleneck != bench.Bottleneck(c.Sender, c.Receiver) {
			t.Errorf("case %s: %s, bottleneck %q, err %v, sender %v receiver %v", key, detect.Rate(c.BitsPerSecond), c.Bottleneck, c.Err, c.Sender, c.Receiver)
		}
		if c.Bottleneck != "" {
			named++
		}
	}
	t.Logf("%d of %d cases named a bottleneck", named, len(res.Cases))
	for k := range want {
		t.Errorf("case %s missing", k)
	}
	if res.Device != b.Tunnel || res.PeerDevice != b.Tunnel || res.Address != b.UnderlayIP.String() {
		t.Errorf("devices %q/%q, address %q: want %s/%s at %s", res.Device, res.PeerDevice, res.Address, a.Tunnel, b.Tunnel, b.UnderlayIP)
	}
	m := res.Measurement()
	if _, _, ok := m.OffloadEffect(); !ok {
		t.Errorf("the measurement has no offload effect: %+v", m)
	}
	t.Logf("%+v", res.Measurement())
	for _, s := range []*testbed.Side{a, b} {
		if l := peerLinks(t, s); len(l) > 0 {
			t.Errorf("%s keeps temporary tunnels %v after the run", s.NS, l)
		}
	}
	eventually(t, 5*time.Second, "the data ports close", func() error {
		if after := listeners(t, b); len(after) != len(before) {
			return fmt.Errorf("listening before %v, after %v", before, after)
		}
		return nil
	})
}

var _ = netlink.LinkList

// dropLargeTunnelPackets adds an nftables rule in s's namespace that
// drops outer UDP packets to port larger than mtu: what an underlay that
// cannot take GSO tunnel packets does. It goes with the namespace.
func dropLargeTunnelPackets(t *testing.T, s *testbed.Side, port, mtu int) {
	t.Helper()
	nft := privtest.Tool(t, "nft")
	rules := fmt.Sprintf("table inet ntfault {\n chain out {\n  type filter hook output priority 0; policy accept;\n  udp dport %d meta length > %d counter drop\n }\n}\n", port, mtu)
	cmd := exec.Command("ip", "netns", "exec", s.NS, nft, "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
}

// TestPeerBenchOffloadHurts: where the sending node's underlay drops
// tunnel packets larger than its MTU, offload on leaves as large GSO
// packets and collapses, off leaves as MTU-sized ones and keeps going: the
// measurement shows on < off, the evidence the rules use.
func TestPeerBenchOffloadHurts(t *testing.T) {
	bed := testbedtest.New(t, testbed.Options{})
	a, b := bed.A, bed.B
	token := writeToken(t, "tok")
	startResponder(t, a, b, token)
	dropLargeTunnelPackets(t, a, bench.DefaultPeerTunnelPort, 1500)

	state := t.TempDir()
	res, r := peerBench(t, a, b, token, "--direction", "send", "--state-dir", state)
	expectCode(t, r, exitOK, "bench --peer")
	on, off, ok := res.Measurement().OffloadEffect()
	if !ok {
		t.Fatalf("no offload effect measured:\n%s", r.out)
	}
	t.Logf("offload on %s, off %s", detect.Rate(on), detect.Rate(off))
	if !(on*5 < off) || off < 1e9 {
		t.Errorf("offload on %s, off %s: want on far below off, and off at Gbit/s", detect.Rate(on), detect.Rate(off))
	}
	// The CNI tunnel (another port) is not touched by the rule.
	if c, ok := res.Measurement().Case(detect.PeerCaseTunnel, detect.PeerSend); !ok || c.BitsPerSecond < 1e9 {
		t.Errorf("the CNI tunnel case: %+v", c)
	}
	var text strings.Builder
	if err := bench.WritePeerText(&text, res); err != nil || !strings.Contains(text.String(), "offload HURTS") {
		t.Errorf("the text does not say offload hurts: %v\n%s", err, text.String())
	}

	// The kept measurement decides: with the CNI tunnel's offload off, on
	// a kernel with the NAT checksum fix, doctor would recommend turning
	// it on; on this path it says offload hurts instead, and nothing is
	// automatic.
	if err := a.SetFeatures(a.Tunnel, map[string]bool{detect.FeatureTxChecksumGeneric: false}); err != nil {
		t.Fatal(err)
	}
	d := nodetuneIn(t, a.NS, nil, nil, "doctor", "--window", "200ms", "-o", "json", "--kube-proxy.url=", "--state-dir", state)
	var rep struct {
		Findings []struct {
			Rule, Subject string
			Fix           struct{ Auto bool }
		}
	}
	if i := strings.Index(d.out, "{\n"); i < 0 || json.Unmarshal([]byte(d.out[i:]), &rep) != nil {
		t.Fatalf("doctor printed no JSON report:\n%s", d.out)
	}
	hurts := false
	for _, f := range rep.Findings {
		switch {
		case f.Rule == "tunnel-tx-checksum-off" && f.Subject == a.Tunnel:
			t.Errorf("doctor recommends turning offload on where it measured slower: %+v", f)
		case f.Rule == "tunnel-offload-hurts" && f.Subject == a.Tunnel:
			hurts = true
			if f.Fix.Auto {
				t.Errorf("tunnel-offload-hurts is automatic: %+v", f)
			}
		}
	}
	if !hurts {
		t.Errorf("doctor does not say offload hurts on %s:\n%s", a.Tunnel, d.out)
	}
}

// TestPeerOffloadChangedUnderTheCase: when something else switches the
// sending end's temporary tunnel offload during a case (an agent that
// remediates every tunnel it sees), the case is reported as not measured,
// on either end, rather than as a figure for a state it did not hold.
func TestPeerOffloadChangedUnderTheCase(t *testing.T) {
	bed := testbedtest.New(t, testbed.Options{})
	a, b := bed.A, bed.B
	token := writeToken(t, "tok")
	startResponder(t, a, b, token)
	for _, tc := range []struct {
		dir    string
		sender *testbed.Side
		prefix string
	}{{detect.PeerSend, a, bench.MeasurerDevicePrefix}, {detect.PeerReceive, b, bench.ResponderDevicePrefix}} {
		t.Run(tc.dir, func(t *testing.T) {
			done := make(chan struct{})
			flipped := make(chan error, 1)
			go func() {
				deadline := time.Now().Add(20 * time.Second)
				for time.Now().Before(deadline) {
					select {
					case <-done:
						flipped <- fmt.Errorf("the run ended before the device appeared")
						return
					default:
					}
					links, err := tc.sender.Netlink().LinkList()
					if err != nil {
						flipped <- err
						return
					}
					for _, l := range links {
						if strings.HasPrefix(l.Attrs().Name, tc.prefix) {
							time.Sleep(2 * time.Second) // into the measuring window
							flipped <- tc.sender.SetFeatures(l.Attrs().Name, map[string]bool{detect.FeatureTxChecksumGeneric: true})
							return
						}
					}
					time.Sleep(20 * time.Millisecond)
				}
				flipped <- fmt.Errorf("no temporary device appeared")
			}()
			res, r := peerBench(t, a, b, token, "--peer.cases", detect.PeerCaseOffloadOff, "--direction", tc.dir, "--duration", "4s")
			close(done)
			if err := <-flipped; err != nil {
				t.Fatalf("flipping the offload: %v", err)
			}
			expectCode(t, r, exitOK, "bench --peer")
			if len(res.Cases) != 1 || !res.Cases[0].Err.Failed() || !strings.Contains(res.Cases[0].Err.Error(), "changed") {
				t.Errorf("a case whose offload changed under it: %+v", res.Cases)
			}
		})
	}
}
