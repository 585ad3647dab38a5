package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/safchain/ethtool"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
	"github.com/nodetune/nodetune/tune"
)

// ntRun is one finished nodetune process.
type ntRun struct {
	out    string
	code   int
	killed bool // by SIGKILL, from the crash hook
}

// nodetuneIn runs nodetune inside ns with extra environment variables, as
// an operator would with `ip netns exec`. prefix goes between the two, for
// setpriv.
func nodetuneIn(t *testing.T, ns string, env, prefix []string, args ...string) ntRun {
	t.Helper()
	argv := append(append([]string{"netns", "exec", ns}, prefix...), append([]string{nodetuneBinary(t)}, args...)...)
	cmd := exec.Command("ip", argv...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return ntRun{out: out.String()}
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		return ntRun{out: out.String(), code: ee.ExitCode(), killed: ws.Signaled() && ws.Signal() == syscall.SIGKILL}
	}
	t.Fatalf("ip %s: %v\n%s", strings.Join(argv, " "), err, out.String())
	return ntRun{}
}

func fixArgs(stateDir string, extra ...string) []string {
	return append([]string{"fix", "--yes", "--window", "200ms", "--kube-proxy.url=", "--state-dir", stateDir}, extra...)
}

func rollbackArgs(stateDir string, extra ...string) []string {
	return append([]string{"rollback", "--yes", "--state-dir", stateDir}, extra...)
}

// features is the full requested/active state of every feature of dev.
func features(t *testing.T, s *testbed.Side, dev string) map[string]ethtool.FeatureState {
	t.Helper()
	f, err := s.Ethtool().FeaturesWithState(dev)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func setFeatures(t *testing.T, s *testbed.Side, f map[string]bool) {
	t.Helper()
	if err := s.Ethtool().Change(s.Tunnel, f); err != nil {
		t.Fatal(err)
	}
}

func expectCode(t *testing.T, r ntRun, want int, what string) {
	t.Helper()
	if r.code != want || r.killed {
		t.Fatalf("%s: exit %d (killed %t), want %d\n%s", what, r.code, r.killed, want, r.out)
	}
}

// TestFixOffloadRoundTrip: on a tunnel with tx checksum offload off, fix
// turns it on and brings TSO back, a second fix writes nothing, and
// rollback puts every feature back exactly as it was, requested state
// included.
func TestFixOffloadRoundTrip(t *testing.T) {
	for _, tso := range []bool{true, false} {
		t.Run(fmt.Sprintf("tso requested %t", tso), func(t *testing.T) {
			b := testbedtest.New(t, testbed.Options{})
			a := b.A
			setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false, detect.FeatureTSO: tso})
			before := features(t, a, a.Tunnel)
			dir := t.TempDir()

			// Without --yes and without a terminal to ask on, nothing happens.
			r := nodetuneIn(t, a.NS, nil, nil, slices.DeleteFunc(fixArgs(dir), func(s string) bool { return s == "--yes" })...)
			expectCode(t, r, exitIncomplete, "fix without --yes")
			if !strings.Contains(r.out, "not a terminal") || tune.JournalExists(dir) {
				t.Errorf("fix without --yes:\n%s", r.out)
			}
			if diff := cmp.Diff(before, features(t, a, a.Tunnel)); diff != "" {
				t.Fatalf("fix without --yes changed features:\n%s", diff)
			}

			r = nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...)
			expectCode(t, r, exitOK, "fix")
			after := features(t, a, a.Tunnel)
			for _, f := range []string{detect.FeatureTxChecksumGeneric, detect.FeatureTSO, detect.FeatureTSO6} {
				if !after[f].Active {
					t.Errorf("%s is not active after fix\n%s", f, r.out)
				}
			}

			journal, _ := os.ReadFile(filepath.Join(dir, tune.JournalFile))
			r = nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...)
			expectCode(t, r, exitOK, "second fix")
			if !strings.Contains(r.out, "Nothing to fix") {
				t.Errorf("second fix planned something:\n%s", r.out)
			}
			if again, _ := os.ReadFile(filepath.Join(dir, tune.JournalFile)); !bytes.Equal(again, journal) {
				t.Errorf("second fix wrote to the journal")
			}
			if diff := cmp.Diff(after, features(t, a, a.Tunnel)); diff != "" {
				t.Errorf("second fix changed features:\n%s", diff)
			}

			r = nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir, "--dry-run")...)
			expectCode(t, r, exitIncomplete, "rollback --dry-run")
			if !strings.Contains(r.out, "ethtool -K vxlan0 tx-checksum-ip-generic off") {
				t.Errorf("dry run does not print the ethtool command:\n%s", r.out)
			}
			if diff := cmp.Diff(after, features(t, a, a.Tunnel)); diff != "" {
				t.Errorf("rollback --dry-run changed features:\n%s", diff)
			}

			r = nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir)...)
			expectCode(t, r, exitOK, "rollback")
			if diff := cmp.Diff(before, features(t, a, a.Tunnel)); diff != "" {
				t.Errorf("features after rollback (-before +after):\n%s\n%s", diff, r.out)
			}
			r = nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir)...)
			if r.code != exitOK || !strings.Contains(r.out, "Nothing to roll back") {
				t.Errorf("second rollback: exit %d\n%s", r.code, r.out)
			}
		})
	}
}

// TestFixKillAtEveryStep kills fix with SIGKILL between every pair of its
// steps (journal intent, host write, journal applied, read back and
// journal verified, for both the checksum change and the TSO change that
// follows it), then runs rollback, and checks that every feature is back
// exactly as it was. It does the same to rollback itself.
func TestFixKillAtEveryStep(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	// TSO not requested: fix must turn it on explicitly, a second journaled
	// change, so the kill points cover two entries.
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false, detect.FeatureTSO: false})
	before := features(t, a, a.Tunnel)

	check := func(t *testing.T, dir, what string) {
		t.Helper()
		r := nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir)...)
		expectCode(t, r, exitOK, what+": rollback")
		if diff := cmp.Diff(before, features(t, a, a.Tunnel)); diff != "" {
			t.Fatalf("%s: features after rollback (-before +after):\n%s\n%s", what, diff, r.out)
		}
	}
	for _, step := range []string{"intent:1", "write:1", "applied:1", "verified:1", "intent:2", "write:2", "applied:2", "verified:2"} {
		t.Run("fix "+step, func(t *testing.T) {
			dir := t.TempDir()
			r := nodetuneIn(t, a.NS, []string{tune.CrashEnv + "=" + step}, nil, fixArgs(dir)...)
			if !r.killed {
				t.Fatalf("fix was not killed at %s: exit %d\n%s", step, r.code, r.out)
			}
			check(t, dir, "killed at "+step)
		})
	}
	for _, step := range []string{"restore:1", "restored:1", "restore:2", "restored:2"} {
		t.Run("rollback "+step, func(t *testing.T) {
			dir := t.TempDir()
			expectCode(t, nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...), exitOK, "fix")
			r := nodetuneIn(t, a.NS, []string{tune.CrashEnv + "=" + step}, nil, rollbackArgs(dir)...)
			if !r.killed {
				t.Fatalf("rollback was not killed at %s: exit %d\n%s", step, r.code, r.out)
			}
			check(t, dir, "rollback killed at "+step)
		})
	}
	t.Run("fix after a crash reconciles", func(t *testing.T) {
		dir := t.TempDir()
		r := nodetuneIn(t, a.NS, []string{tune.CrashEnv + "=applied:1"}, nil, fixArgs(dir)...)
		if !r.killed {
			t.Fatalf("fix was not killed: %s", r.out)
		}
		r = nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...)
		expectCode(t, r, exitOK, "fix after the crash")
		if !strings.Contains(r.out, "Recovered from an interrupted run") || !strings.Contains(r.out, "verified") {
			t.Errorf("fix did not reconcile the interrupted run:\n%s", r.out)
		}
		check(t, dir, "after reconcile")
	})
}

// TestFixRefusesWhatFelixOwns: on Calico's tunnel, fix refuses to fight
// Felix and names the durable fix, unless --force.
func TestFixRefusesWhatFelixOwns(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{TunnelName: "vxlan.calico"})
	a := b.A
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	before := features(t, a, a.Tunnel)
	dir := t.TempDir()
	r := nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...)
	expectCode(t, r, exitIncomplete, "fix")
	for _, want := range []string{"refused", detect.OwnerFelix, "felixconfiguration", detect.FelixOverride, "--force"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("output does not mention %q:\n%s", want, r.out)
		}
	}
	if diff := cmp.Diff(before, features(t, a, a.Tunnel)); diff != "" {
		t.Errorf("a refused fix changed features:\n%s", diff)
	}
	r = nodetuneIn(t, a.NS, nil, nil, fixArgs(dir, "--force")...)
	expectCode(t, r, exitOK, "fix --force")
	if !features(t, a, a.Tunnel)[detect.FeatureTxChecksumGeneric].Active {
		t.Errorf("fix --force did not turn offload on:\n%s", r.out)
	}
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir)...), exitOK, "rollback")
	if diff := cmp.Diff(before, features(t, a, a.Tunnel)); diff != "" {
		t.Errorf("features after rollback:\n%s", diff)
	}
}

// TestFixHoldsBackWhileChecksumsFail sends tunnel packets with bad outer
// checksums from side A to side B's VXLAN port while fix measures B: B
// must keep tx checksum offload off and name A. (Junk to another port is
// no evidence about the tunnel: TestDoctorTracesBadChecksums.)
func TestFixHoldsBackWhileChecksumsFail(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	setFeatures(t, b.B, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	// Without rx checksumming on its veth, B's UDP layer checks every
	// checksum itself and counts the bad ones in InCsumErrors.
	if err := b.B.Ethtool().Change(b.B.Underlay, map[string]bool{"rx-checksum": false}); err != nil {
		t.Fatal(err)
	}
	before := features(t, b.B, b.B.Tunnel)
	stop := sendBadUDP(t, b.A, b.B.UnderlayIP, vxlanPort)
	r := nodetuneIn(t, b.B.NS, nil, nil, fixArgs(t.TempDir(), "--window", "1s")...)
	stop()
	expectCode(t, r, exitIncomplete, "fix")
	if !strings.Contains(r.out, "bad outer checksums") || !strings.Contains(r.out, b.A.UnderlayIP.String()) ||
		!strings.Contains(r.out, "not fixed automatically") {
		t.Errorf("fix does not say why offload stays off, naming %s:\n%s", b.A.UnderlayIP, r.out)
	}
	if diff := cmp.Diff(before, features(t, b.B, b.B.Tunnel)); diff != "" {
		t.Errorf("fix changed features while checksums failed:\n%s", diff)
	}
}

// zeroChecksumTunnel replaces s's VXLAN device with one that sends zero
// outer UDP checksums (noudpcsum), as older kernels did by default and as
// the NAT checksum bug needs. netlink's Vxlan cannot ask for that: it sends
// IFLA_VXLAN_UDP_CSUM only to turn checksums on.
func zeroChecksumTunnel(t *testing.T, s *testbed.Side) {
	t.Helper()
	for _, args := range [][]string{
		{"-n", s.NS, "link", "del", s.Tunnel},
		{"-n", s.NS, "link", "add", s.Tunnel, "type", "vxlan", "id", "42", "dstport", "4789", "dev", s.Underlay, "noudpcsum"},
		{"-n", s.NS, "link", "set", s.Tunnel, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// fakeKernelRelease is a prefix for nodetuneIn that makes the kernel's release
// read as release, by a bind mount over /proc/sys/kernel/osrelease in a
// private mount namespace of that one command.
func fakeKernelRelease(t *testing.T, release string) []string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "osrelease")
	if err := os.WriteFile(f, []byte(release+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{privtest.Tool(t, "unshare"), "-m", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /proc/sys/kernel/osrelease && shift && exec "$@"`, "sh", f}
}

// vxlanPort is the testbed's VXLAN UDP port.
const vxlanPort = 4789

// sendBadUDP sends UDP datagrams with a wrong checksum from side s to
// dst:port every 10 ms until the returned func is called.
func sendBadUDP(t *testing.T, s *testbed.Side, dst netip.Addr, port uint16) func() {
	t.Helper()
	var fd int
	err := s.Do(func() error {
		var err error
		fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_UDP)
		return err
	})
	if err != nil {
		t.Fatalf("raw socket in %s: %v", s.NS, err)
	}
	payload := []byte("bad checksum")
	pkt := binary.BigEndian.AppendUint16(nil, 40000)
	pkt = binary.BigEndian.AppendUint16(pkt, port)
	pkt = binary.BigEndian.AppendUint16(pkt, uint16(8+len(payload)))
	pkt = binary.BigEndian.AppendUint16(pkt, 0xdead) // wrong, and not 0 (which means "none")
	pkt = append(pkt, payload...)
	to := &syscall.SockaddrInet4{Addr: dst.As4()}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
				_ = syscall.Sendto(fd, pkt, 0, to)
			}
		}
	}()
	return func() { close(done); <-finished; syscall.Close(fd) }
}

// TestFixRefusesBadJournal: a corrupt or foreign journal stops fix before
// it writes anything, and is left byte for byte as it was.
func TestFixRefusesBadJournal(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	before := features(t, a, a.Tunnel)

	good := t.TempDir()
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, fixArgs(good)...), exitOK, "fix")
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, rollbackArgs(good)...), exitOK, "rollback")
	journal, err := os.ReadFile(filepath.Join(good, tune.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Replace(journal, []byte(`"to":"on"`), []byte(`"to":"of"`), 1)
	for name, content := range map[string][]byte{
		"corrupt": corrupt,
		"foreign": []byte("# /etc/sysctl.conf\nnet.core.netdev_budget = 600\n"),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tune.JournalFile)
			os.WriteFile(path, content, 0o600)
			for _, args := range [][]string{fixArgs(dir), rollbackArgs(dir)} {
				r := nodetuneIn(t, a.NS, nil, nil, args...)
				expectCode(t, r, exitFailure, args[0])
				if !strings.Contains(r.out, path) || !strings.Contains(r.out, "left as it is") {
					t.Errorf("%s does not say which journal and that it is kept:\n%s", args[0], r.out)
				}
				if got, _ := os.ReadFile(path); !bytes.Equal(got, content) {
					t.Errorf("%s modified the journal", args[0])
				}
				if diff := cmp.Diff(before, features(t, a, a.Tunnel)); diff != "" {
					t.Errorf("%s changed features:\n%s", args[0], diff)
				}
			}
		})
	}
}

// TestFixWithoutPermission runs fix as an unprivileged user: with no
// access to the state directory it stops before the host; with a writable
// state directory the ethtool write is refused by the kernel, recorded,
// and reported.
func TestFixWithoutPermission(t *testing.T) {
	setpriv := privtest.Tool(t, "setpriv")
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	before := features(t, a, a.Tunnel)
	nobody := []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"}
	// The binary must be reachable by nobody.
	if err := os.Chmod(filepath.Dir(nodetuneBinary(t)), 0o755); err != nil {
		t.Fatal(err)
	}

	closed := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	r := nodetuneIn(t, a.NS, nil, nobody, fixArgs(closed)...)
	expectCode(t, r, exitFailure, "fix without access to the state directory")
	if !strings.Contains(r.out, "permission denied") {
		t.Errorf("fix does not say permission denied:\n%s", r.out)
	}

	open := t.TempDir()
	os.Chmod(open, 0o777)
	os.Chmod(filepath.Dir(open), 0o755)
	r = nodetuneIn(t, a.NS, nil, nobody, fixArgs(open)...)
	expectCode(t, r, exitChangeFailed, "fix without CAP_NET_ADMIN")
	if !strings.Contains(r.out, "permission denied") || !strings.Contains(r.out, "unchanged") {
		t.Errorf("fix does not say the write was refused and nothing changed:\n%s", r.out)
	}
	if diff := cmp.Diff(before, features(t, a, a.Tunnel)); diff != "" {
		t.Errorf("features changed:\n%s", diff)
	}
	// The journal records the attempt, closed, so rollback has nothing to do.
	r = nodetuneIn(t, a.NS, nil, nil, rollbackArgs(open)...)
	if r.code != exitOK || !strings.Contains(r.out, "Nothing to roll back") {
		t.Errorf("rollback after a refused write: exit %d\n%s", r.code, r.out)
	}
}

// TestFixAsksOnATerminal runs fix without --yes on a pseudo-terminal (made
// by script(1)) and answers the prompt: "n" changes nothing, "y" applies.
func TestFixAsksOnATerminal(t *testing.T) {
	script := privtest.Tool(t, "script")
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	dir := t.TempDir()
	line := strings.Join(append([]string{"ip", "netns", "exec", a.NS, nodetuneBinary(t)},
		slices.DeleteFunc(fixArgs(dir), func(s string) bool { return s == "--yes" })...), " ")
	answer := func(reply string) string {
		cmd := exec.Command(script, "-qec", line, "/dev/null")
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		in.Write([]byte(reply + "\n")) // the terminal holds it until fix asks
		err = cmd.Wait()
		in.Close()
		if !strings.Contains(out.String(), "Apply this change? [y/N]") {
			t.Fatalf("no prompt (%v):\n%s", err, out.String())
		}
		return out.String()
	}
	if out := answer("n"); !strings.Contains(out, "Nothing was changed") || features(t, a, a.Tunnel)[detect.FeatureTxChecksumGeneric].Active {
		t.Errorf("answering n:\n%s", out)
	}
	if out := answer("y"); !strings.Contains(out, "verified") || !features(t, a, a.Tunnel)[detect.FeatureTxChecksumGeneric].Active {
		t.Errorf("answering y:\n%s", out)
	}
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir)...), exitOK, "rollback")
}

// TestRollbackDryRunWhileLocked: rollback --dry-run reads the journal
// without taking its lock, so it works while another nodetune (a running
// serve) holds it, and writes nothing at all, not even the torn-line
// acknowledgement that a writer would append.
func TestRollbackDryRunWhileLocked(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	dir := t.TempDir()
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...), exitOK, "fix")
	after := features(t, a, a.Tunnel)

	path := filepath.Join(dir, tune.JournalFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"crc":"`); err != nil { // a record being written
		t.Fatal(err)
	}
	journal, _ := os.ReadFile(path)

	r := nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir, "--dry-run")...)
	expectCode(t, r, exitIncomplete, "rollback --dry-run while the journal is locked")
	if !strings.Contains(r.out, "ethtool -K "+a.Tunnel+" tx-checksum-ip-generic off") {
		t.Errorf("dry run does not print the ethtool command:\n%s", r.out)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, journal) {
		t.Errorf("rollback --dry-run wrote to the journal:\n%q\nwant\n%q", got, journal)
	}
	if diff := cmp.Diff(after, features(t, a, a.Tunnel)); diff != "" {
		t.Errorf("rollback --dry-run changed features:\n%s", diff)
	}

	r = nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir)...)
	expectCode(t, r, exitFailure, "rollback while the journal is locked")
	if !strings.Contains(r.out, "another nodetune process holds it") {
		t.Errorf("rollback does not say who holds the journal:\n%s", r.out)
	}
}

// TestFixExitCountsReconcile: a fix whose reconcile of an interrupted run
// reverted a change must not exit 0 or say that every change was applied,
// even when all of its own changes were. The run is killed right after it
// wrote TSO on (its second change, before journaling that write), and tx
// checksum offload is then turned off by hand, which leaves TSO requested
// but inactive: reconcile finds the kernel did not take TSO, and reverts it.
// (A renamed device no longer makes reconcile fail: it is followed by its
// identity.)
func TestFixExitCountsReconcile(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false, detect.FeatureTSO: false})
	dir := t.TempDir()
	r := nodetuneIn(t, a.NS, []string{tune.CrashEnv + "=write:2"}, nil, fixArgs(dir)...)
	if !r.killed {
		t.Fatalf("fix was not killed: exit %d\n%s", r.code, r.out)
	}
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	r = nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...)
	expectCode(t, r, exitChangeFailed, "fix after a reconcile that reverted")
	if !strings.Contains(r.out, "Recovered from an interrupted run") || !strings.Contains(r.out, "reverted") {
		t.Errorf("fix does not report the reverted reconcile:\n%s", r.out)
	}
	if strings.Contains(r.out, "Every change was applied and verified") {
		t.Errorf("fix says every change was applied:\n%s", r.out)
	}
	if f := features(t, a, a.Tunnel); !f[detect.FeatureTxChecksumGeneric].Active || !f[detect.FeatureTSO].Active {
		t.Errorf("fix's own changes were not made: %v\n%s", f, r.out)
	}
}

// TestFixJournalNotWritable runs fix with a file size limit (prlimit) a
// little above the journal's size, so that its first record is cut short
// with EFBIG as on a full disk. fix must exit 4 ("could not run"), write
// nothing to the host, and leave the journal as it was, usable by the
// next run.
func TestFixJournalNotWritable(t *testing.T) {
	prlimit := privtest.Tool(t, "prlimit")
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	before := features(t, a, a.Tunnel)
	dir := t.TempDir()
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...), exitOK, "fix")
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir, "--hold=false")...), exitOK, "rollback")
	path := filepath.Join(dir, tune.JournalFile)
	journal, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	limit := fmt.Sprintf("--fsize=%d", len(journal)+100)
	r := nodetuneIn(t, a.NS, nil, []string{prlimit, limit}, fixArgs(dir)...)
	expectCode(t, r, exitFailure, "fix with a journal that cannot grow")
	if !strings.Contains(r.out, "journal not writable") || !strings.Contains(r.out, "file too large") {
		t.Errorf("fix does not say the journal could not be written:\n%s", r.out)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, journal) {
		t.Errorf("the journal was not cut back to what it was:\n%q", got[len(journal):])
	}
	if diff := cmp.Diff(before, features(t, a, a.Tunnel)); diff != "" {
		t.Errorf("fix changed features without a journal record:\n%s", diff)
	}
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...), exitOK, "fix with room again")
	expectCode(t, nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir)...), exitOK, "rollback")
}

// TestFixKeepsOffloadOffAfterBadChecksums: fix turns tx checksum offload
// off on B where it is exposed to the NAT checksum bug (a kernel without the
// fix, and a device that sends zero outer checksums); the quiet runs that
// follow on a fixed kernel, dry or not, must refuse to turn it back on and
// say how to allow it, until rollback closes the entry.
func TestFixKeepsOffloadOffAfterBadChecksums(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	zeroChecksumTunnel(t, b.B)
	dir := t.TempDir()
	r := nodetuneIn(t, b.B.NS, nil, fakeKernelRelease(t, "5.4.40"), fixArgs(dir, "--window", "1s", "--rule", "tunnel-tx-checksum-unsafe")...)
	expectCode(t, r, exitOK, "fix where the kernel lacks the NAT fix")
	if features(t, b.B, b.B.Tunnel)[detect.FeatureTxChecksumGeneric].Active {
		t.Fatalf("fix left tx checksum offload on:\n%s", r.out)
	}
	off := features(t, b.B, b.B.Tunnel)

	for _, extra := range [][]string{{"--dry-run"}, nil} {
		r = nodetuneIn(t, b.B.NS, nil, nil, fixArgs(dir, extra...)...)
		expectCode(t, r, exitIncomplete, fmt.Sprintf("quiet fix %v", extra))
		if !strings.Contains(r.out, "refused: "+b.B.Tunnel+" tx-checksum-ip-generic: off -> on") || !strings.Contains(r.out, "nodetune rollback") {
			t.Errorf("quiet fix %v does not refuse offload and say how to allow it:\n%s", extra, r.out)
		}
	}
	if diff := cmp.Diff(off, features(t, b.B, b.B.Tunnel)); diff != "" {
		t.Errorf("a quiet fix changed features:\n%s", diff)
	}
	expectCode(t, nodetuneIn(t, b.B.NS, nil, nil, rollbackArgs(dir)...), exitOK, "rollback")
	if !features(t, b.B, b.B.Tunnel)[detect.FeatureTxChecksumGeneric].Active {
		t.Errorf("rollback did not turn offload back on")
	}
}
