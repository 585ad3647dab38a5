package tune

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/safchain/ethtool"
	"golang.org/x/sys/unix"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// bedSnapshot is what the probes would see of side s: its tunnel with its
// real ethtool features, on the running kernel, with no bad checksums.
func bedSnapshot(t *testing.T, s *testbed.Side) *detect.Snapshot {
	t.Helper()
	states, err := s.Ethtool().FeaturesWithState(s.Tunnel)
	if err != nil {
		t.Fatal(err)
	}
	f := detect.Features{State: map[string]bool{}}
	for _, name := range allowedFeatures {
		if st, ok := states[name]; ok {
			f.State[name] = st.Active
			if !st.Available {
				f.Fixed = append(f.Fixed, name)
			}
		}
	}
	release := readFile(t, "/proc/sys/kernel/osrelease")
	v, err := detect.ParseRelease(release)
	if err != nil {
		t.Fatal(err)
	}
	return &detect.Snapshot{
		Kernel:  detect.Kernel{Release: release, Version: v},
		Tunnels: detect.Tunnels{Devices: []detect.Tunnel{{Name: s.Tunnel, Kind: detect.KindVXLAN, Up: true, Features: f}}},
	}
}

func bedFeatures(t *testing.T, s *testbed.Side) map[string]ethtool.FeatureState {
	t.Helper()
	f, err := s.Ethtool().FeaturesWithState(s.Tunnel)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func entries(t *testing.T, dir string) []*Entry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseJournal(b)
	if err != nil {
		t.Fatal(err)
	}
	return st.entries
}

// TestVerifyRevertsOnTheRealKernel asks the kernel for TSO while tx
// checksumming is off: it records the request but keeps TSO inactive, so
// the read-back fails and the original request is written back.
func TestVerifyRevertsOnTheRealKernel(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	if err := a.Ethtool().Change(a.Tunnel, map[string]bool{detect.FeatureTxChecksumGeneric: false, detect.FeatureTSO: false}); err != nil {
		t.Fatal(err)
	}
	before := bedFeatures(t, a)
	s := bedSnapshot(t, a)
	p := Propose(s, []rules.Finding{finding(rules.Change{Kind: rules.ChangeFeature, Target: a.Tunnel, Setting: detect.FeatureTSO, Value: on})}, PlanOptions{})
	dir := t.TempDir()
	tu := openTuner(t, dir, NewHost("/proc", "/sys", a.Ethtool()))
	out := tu.applyProposed(context.Background(), p)
	if len(out) != 1 || out[0].Result != Reverted || !strings.Contains(out[0].Err.Error(), "did not take") {
		t.Fatalf("apply: %v", out)
	}
	if diff := cmp.Diff(before, bedFeatures(t, a)); diff != "" {
		t.Errorf("features after the revert (-before +after):\n%s", diff)
	}
	if e := entries(t, dir); len(e) != 1 || e[0].State != evReverted {
		t.Errorf("journal: %+v", e)
	}
}

// TestMissingDeviceOnTheRealKernel deletes the tunnel between the
// snapshot and the apply.
func TestMissingDeviceOnTheRealKernel(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	if err := a.Ethtool().Change(a.Tunnel, map[string]bool{detect.FeatureTxChecksumGeneric: false}); err != nil {
		t.Fatal(err)
	}
	s := bedSnapshot(t, a)
	p := Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
	if len(p.Approved()) != 1 {
		t.Fatalf("plan: %+v", p)
	}
	link, err := a.Netlink().LinkByName(a.Tunnel)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Netlink().LinkDel(link); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tu := openTuner(t, dir, NewHost("/proc", "/sys", a.Ethtool()))
	out := tu.applyProposed(context.Background(), p)
	if len(out) != 1 || out[0].Result != Failed || !errors.Is(out[0].Err, detect.ErrGone) || !strings.Contains(out[0].Err.Error(), a.Tunnel) {
		t.Fatalf("apply on a deleted device: %v", out)
	}
	if e := entries(t, dir); len(e) != 0 {
		t.Errorf("journaled a change that was never attempted: %+v", e[0])
	}
}

// TestReadOnlySysctlInNetns: in a child network namespace this kernel
// shows net.netfilter.nf_conntrack_max with mode 0444, which even root
// cannot write. Apply must say so and journal nothing.
func TestReadOnlySysctlInNetns(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	k := Key{Kind: rules.ChangeSysctl, Target: SysctlConntrackMax}
	dir := t.TempDir()
	var writable error
	var out []Outcome
	var before, after string
	err := b.A.Do(func() error {
		h := NewHost("/proc", "/sys", b.A.Ethtool())
		v, err := h.Read(context.Background(), k)
		if err != nil {
			return err
		}
		before = v.Set
		writable = h.Writable(context.Background(), k)
		cur, _ := parseInt(v.Set)
		s := &detect.Snapshot{Conntrack: detect.Conntrack{Present: true, Max: cur}, Memory: detect.Memory{TotalBytes: 64 << 30}}
		p := Propose(s, []rules.Finding{finding(rules.Change{Kind: rules.ChangeSysctl, Target: SysctlConntrackMax, Value: strconv.FormatInt(cur+1, 10)})}, PlanOptions{})
		if len(p.Approved()) != 1 {
			return fmt.Errorf("plan: %+v", p)
		}
		tu, err := Open(dir, h)
		if err != nil {
			return err
		}
		defer tu.Close()
		out = tu.applyProposed(context.Background(), p)
		v, err = h.Read(context.Background(), k)
		after = v.Set
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(writable, detect.ErrPermission) || !strings.Contains(writable.Error(), "not writable here") {
		t.Errorf("Writable(%s) in a child netns = %v", k, writable)
	}
	if len(out) != 1 || out[0].Result != Failed || !errors.Is(out[0].Err, detect.ErrPermission) {
		t.Errorf("apply: %v", out)
	}
	if before != after {
		t.Errorf("%s changed from %s to %s", k, before, after)
	}
	if e := entries(t, dir); len(e) != 0 {
		t.Errorf("journaled a change that could not be made: %+v", e[0])
	}
}

// roHelperEnv makes TestReadOnlyMount run its inner half: inside a private
// mount namespace where the fixture's sys tree is mounted read-only.
const roHelperEnv = "NODETUNE_TEST_READONLY_PROC"

// TestReadOnlyMount mounts a procfs fixture's sys tree read-only in a
// private mount namespace (as a container's /proc/sys is) and runs Apply
// there in a child process.
func TestReadOnlyMount(t *testing.T) {
	if proc := os.Getenv(roHelperEnv); proc != "" {
		readOnlyHelper(t, proc)
		return
	}
	privtest.Root(t)
	unshare := privtest.Tool(t, "unshare")
	n := newNode(t)
	state := t.TempDir()
	script := `mount --bind "$1/sys" "$1/sys" && mount -o remount,bind,ro "$1/sys" && exec "$2" -test.run '^TestReadOnlyMount$' -test.v -test.count=1`
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", n.proc, os.Args[0])
	cmd.Env = append(os.Environ(), roHelperEnv+"="+n.proc, "NODETUNE_TEST_STATE="+state)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "read-only helper done") {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if got := readFile(t, filepath.Join(n.proc, "sys/net/core/netdev_budget")); got != "300" {
		t.Errorf("netdev_budget = %s, want 300", got)
	}
	if e := entries(t, state); len(e) != 0 {
		t.Errorf("journaled a change that could not be made: %+v", e[0])
	}
}

func readOnlyHelper(t *testing.T, proc string) {
	n := newNodeAt(t, proc)
	budget := filepath.Join(proc, "sys/net/core/netdev_budget")
	if err := os.WriteFile(budget, []byte("301"), 0o644); err == nil {
		t.Fatalf("the fixture is not mounted read-only")
	}
	k := Key{Kind: rules.ChangeSysctl, Target: SysctlBudget}
	if err := n.host.Writable(context.Background(), k); !errors.Is(err, detect.ErrReadOnly) {
		t.Errorf("Writable on a read-only mount: %v", err)
	}
	s := n.snapshot(t)
	s.Softnet.Delta.TimeSqueezed = 5
	p := Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.SoftnetDrops}})
	tu := openTuner(t, os.Getenv("NODETUNE_TEST_STATE"), n.host)
	out := tu.applyProposed(context.Background(), p)
	if len(out) != 1 || out[0].Result != Failed || !strings.Contains(out[0].Err.Error(), "read-only") {
		t.Errorf("apply on a read-only mount: %v", out)
	}
	if !t.Failed() {
		t.Log("read-only helper done")
	}
}

// TestModulesNotPossibleHere runs on this machine's real /proc: its kernel
// has no loadable modules, and loading ip_vs must say so clearly.
func TestModulesNotPossibleHere(t *testing.T) {
	if _, err := os.Stat("/proc/modules"); err == nil {
		t.Skip("this kernel loads modules; the fixture test covers modules_disabled")
	}
	h := NewHost("/proc", "/sys", nil)
	ctx := context.Background()
	k := Key{Kind: rules.ChangeModule, Target: "ip_vs"}
	v, err := h.Read(ctx, k)
	if err != nil || v.Set != moduleUnloaded {
		t.Fatalf("Read(ip_vs) = %v, %v", v, err)
	}
	err = h.Writable(ctx, k)
	if !errors.Is(err, detect.ErrNotSupported) || !strings.Contains(err.Error(), "not possible here") || !strings.Contains(err.Error(), "/proc/modules") {
		t.Errorf("Writable(ip_vs) = %v", err)
	}
	if err := h.Write(ctx, k, moduleLoaded); !errors.Is(err, detect.ErrNotSupported) {
		t.Errorf("Write(ip_vs) = %v", err)
	}
	s := &detect.Snapshot{KubeProxy: detect.KubeProxy{IPVSModules: map[string]bool{}}}
	p := Propose(s, []rules.Finding{finding(rules.Change{Kind: rules.ChangeModule, Target: "ip_vs", Value: moduleLoaded})}, PlanOptions{})
	dir := t.TempDir()
	tu := openTuner(t, dir, h)
	out := tu.applyProposed(ctx, p)
	if len(out) != 1 || out[0].Result != Failed || !strings.Contains(out[0].Err.Error(), "not possible here") {
		t.Errorf("apply: %v", out)
	}
	if e := entries(t, dir); len(e) != 0 {
		t.Errorf("journaled an impossible change: %+v", e[0])
	}
}

// fullDiskEnv makes TestJournalOnAFullDisk run its inner half: inside a
// private mount namespace where the state directory is a one-page tmpfs.
const fullDiskEnv = "NODETUNE_TEST_FULL_DISK"

// TestJournalOnAFullDisk keeps the journal on a 4 KiB tmpfs, mounted in a
// private mount namespace, and raises and restores settings until the
// filesystem is full. The write that fails is a real short write with
// ENOSPC: the journal must be cut back to its last complete record, take
// nothing more, stop every host write, and open again afterwards.
func TestJournalOnAFullDisk(t *testing.T) {
	if dir := os.Getenv(fullDiskEnv); dir != "" {
		fullDiskHelper(t, dir)
		return
	}
	privtest.Root(t)
	unshare := privtest.Tool(t, "unshare")
	state := t.TempDir()
	script := `mount -t tmpfs -o size=4k,mode=0700 nodetune-test "$1" && exec "$2" -test.run '^TestJournalOnAFullDisk$' -test.v -test.count=1`
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", state, os.Args[0])
	cmd.Env = append(os.Environ(), fullDiskEnv+"="+state)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "full disk helper done") {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if e, _ := os.ReadDir(state); len(e) != 0 {
		t.Errorf("the journal was written outside the private tmpfs: %v", e)
	}
}

func fullDiskHelper(t *testing.T, dir string) {
	ctx := context.Background()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil || fs.Type != unix.TMPFS_MAGIC || fs.Blocks*uint64(fs.Bsize) > 8192 {
		t.Fatalf("%s is not the small tmpfs: %+v, %v", dir, fs, err)
	}
	n := newNode(t)
	tu := openTuner(t, dir, n.host)
	path := filepath.Join(dir, JournalFile)
	var failed []Outcome
	for i := 0; len(failed) == 0; i++ {
		if i == 50 {
			t.Fatalf("the journal never filled the filesystem")
		}
		s := loadedSnapshot(t, n)
		out := tu.applyProposed(ctx, Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.SoftnetDrops}}))
		out = append(out, tu.Rollback(ctx, false)...)
		for _, o := range out {
			if o.Result == Failed {
				failed = append(failed, o)
			}
		}
	}
	if !errors.Is(failed[0].Err, ErrJournalWrite) || !errors.Is(failed[0].Err, syscall.ENOSPC) || !strings.Contains(failed[0].Err.Error(), "cut back") {
		t.Errorf("the first failure says %v", failed[0].Err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseJournal(b); err != nil || b[len(b)-1] != '\n' {
		t.Fatalf("the journal after ENOSPC (%d bytes) does not parse: %v", len(b), err)
	}
	files := n.files(t)
	s := loadedSnapshot(t, n)
	for _, o := range tu.applyProposed(ctx, Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{})) {
		if o.Result != Failed && o.Result != Refused {
			t.Errorf("apply after the failure: %s", o)
		}
	}
	if diff := cmp.Diff(files, n.files(t)); diff != "" {
		t.Errorf("the host was written after the journal failed:\n%s", diff)
	}
	tu.Close()
	if _, err := Open(dir, n.host); err != nil {
		t.Errorf("the journal does not open again: %v", err)
	}
	if !t.Failed() {
		t.Logf("full disk helper done: the journal filled %d bytes", len(b))
	}
}
