package tune

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/safchain/ethtool"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

type result struct {
	Key    string
	Result Result
}

func results(out []Outcome) []result {
	var r []result
	for _, o := range out {
		r = append(r, result{o.Change.Key.String(), o.Result})
	}
	return r
}

func openTuner(t *testing.T, dir string, sys System) *Tuner {
	t.Helper()
	tu, err := Open(dir, sys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tu.Close() })
	return tu
}

// hostFiles is the content of every sysctl and RPS file of n.
func (n *node) files(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, root := range []string{n.proc, n.sys} {
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				out[p] = readFile(t, p)
			}
			return nil
		})
	}
	return out
}

func TestApplyAndRollback(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	s := loadedSnapshot(t, n)
	beforeFiles, beforeVX := n.files(t), n.et.state("vxlan0")
	res := rules.Evaluate(s, rules.DefaultConfig())
	p := Propose(s, res.Findings, PlanOptions{})
	tu := openTuner(t, t.TempDir(), n.host)

	out := tu.applyProposed(ctx, p)
	want := []result{
		{SysctlConntrackMax, Refused},
		{"ip_vs_sh", Failed}, // the fixture has no /proc/modules
		{"eth0/rx-0", Verified},
		{"eth0/rx-1", Verified},
		{SysctlMaxBacklog, Verified},
		{"vxlan0 tx-checksum-ip-generic", Verified},
		{SysctlBudget, Verified},
	}
	if diff := cmp.Diff(want, results(out)); diff != "" {
		t.Fatalf("apply (-want +got):\n%s", diff)
	}
	if err := out[1].Err; !errors.Is(err, detect.ErrNotSupported) || !strings.Contains(err.Error(), "not possible here") {
		t.Errorf("module outcome: %v", err)
	}
	for f, want := range map[string]string{
		"sys/net/core/netdev_max_backlog": "2000", "sys/net/core/netdev_budget": "600", "sys/net/netfilter/nf_conntrack_max": "262144",
	} {
		if got := readFile(t, filepath.Join(n.proc, f)); got != want {
			t.Errorf("%s = %s, want %s", f, got, want)
		}
	}
	if got := readFile(t, filepath.Join(n.sys, "class/net/eth0/queues/rx-1/rps_cpus")); got != "3" {
		t.Errorf("rps_cpus = %s, want 3", got)
	}
	for _, f := range SegmentationFeatures {
		if !n.et.devs["vxlan0"][f].Active {
			t.Errorf("%s did not come back with tx checksumming", f)
		}
	}
	if got := len(tu.Entries()); got != 5 {
		t.Errorf("%d open journal entries, want 5 (one per verified write)", got)
	}

	back := tu.Rollback(ctx, false)
	wantBack := []result{
		{SysctlBudget, Restored},
		{"vxlan0 tx-checksum-ip-generic", Restored},
		{SysctlMaxBacklog, Restored},
		{"eth0/rx-1", Restored},
		{"eth0/rx-0", Restored},
	}
	if diff := cmp.Diff(wantBack, results(back)); diff != "" {
		t.Errorf("rollback (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(beforeFiles, n.files(t)); diff != "" {
		t.Errorf("files after rollback (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(beforeVX, n.et.state("vxlan0")); diff != "" {
		t.Errorf("vxlan0 after rollback (-before +after):\n%s", diff)
	}
	if len(tu.Entries()) != 0 {
		t.Errorf("entries still open after rollback: %+v", tu.Entries())
	}
	if again := tu.Rollback(ctx, false); len(again) != 0 {
		t.Errorf("a second rollback did %v", results(again))
	}
}

func TestApplyIsIdempotent(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	s := loadedSnapshot(t, n)
	p := Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{})
	dir := t.TempDir()
	tu := openTuner(t, dir, n.host)
	tu.applyProposed(ctx, p)

	// The same plan again: every setting is already where it should be.
	journal := readFile(t, filepath.Join(dir, JournalFile))
	files, writes := n.files(t), n.et.changes
	for _, o := range tu.applyProposed(ctx, p) {
		if o.Result != Unchanged && o.Result != Refused && o.Result != Failed {
			t.Errorf("second apply: %s", o)
		}
	}
	if n.et.changes != writes {
		t.Errorf("second apply made %d ethtool writes", n.et.changes-writes)
	}
	if diff := cmp.Diff(files, n.files(t)); diff != "" {
		t.Errorf("second apply changed files:\n%s", diff)
	}
	if got := readFile(t, filepath.Join(dir, JournalFile)); got != journal {
		t.Errorf("second apply wrote to the journal")
	}

	// A fresh snapshot of the fixed node plans nothing at all (the
	// conntrack table, refused for kube-proxy, has drained meanwhile).
	s = n.snapshot(t)
	s.Conntrack.Count = 1000
	if p := Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{}); len(p.Changes) != 0 {
		t.Errorf("fixed node: plan %+v", summarize(p))
	}
}

func TestApplyBringsBackSegmentationExplicitly(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	// Someone ran `ethtool -K vxlan0 tx off tso off`: TSO is no longer
	// requested, so the kernel will not bring it back by itself.
	n.et.setRequested(t, "vxlan0", map[string]bool{detect.FeatureTxChecksumGeneric: false, detect.FeatureTSO: false})
	before := n.et.state("vxlan0")
	s := n.snapshot(t)
	p := Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
	tu := openTuner(t, t.TempDir(), n.host)
	out := tu.applyProposed(ctx, p)
	want := []result{{"vxlan0 tx-checksum-ip-generic", Verified}, {"vxlan0 tx-tcp-segmentation", Verified}}
	if diff := cmp.Diff(want, results(out)); diff != "" {
		t.Fatalf("apply (-want +got):\n%s", diff)
	}
	if st := n.et.devs["vxlan0"][detect.FeatureTSO]; !st.Active || !st.Requested {
		t.Errorf("TSO after fix: %+v", st)
	}
	back := tu.Rollback(ctx, false)
	wantBack := []result{{"vxlan0 tx-tcp-segmentation", Restored}, {"vxlan0 tx-checksum-ip-generic", Restored}}
	if diff := cmp.Diff(wantBack, results(back)); diff != "" {
		t.Errorf("rollback (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, n.et.state("vxlan0")); diff != "" {
		t.Errorf("vxlan0 after rollback (-before +after):\n%s", diff)
	}
}

// TestApplyReportsUnwritableSegmentation: after tx checksumming came on,
// a segmentation feature that stays off is skipped only when the driver
// keeps it fixed; any other reason it cannot be written, such as no
// permission, is reported.
func TestApplyReportsUnwritableSegmentation(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want []result
	}{
		{"fixed by the driver", fmt.Errorf("changing TSO: %w", detect.ErrNotSupported),
			[]result{{"vxlan0 tx-checksum-ip-generic", Verified}}},
		{"no permission", fmt.Errorf("changing TSO: %w: %w", detect.ErrPermission, syscall.EPERM),
			[]result{{"vxlan0 tx-checksum-ip-generic", Verified}, {"vxlan0 tx-tcp-segmentation", Failed}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			n.et.setRequested(t, "vxlan0", map[string]bool{detect.FeatureTxChecksumGeneric: false, detect.FeatureTSO: false})
			s := n.snapshot(t)
			p := Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
			sys := &flakySystem{System: n.host, unwritable: func(k Key) error {
				if k.Setting == detect.FeatureTSO {
					return tt.err
				}
				return nil
			}}
			out := openTuner(t, t.TempDir(), sys).applyProposed(context.Background(), p)
			if diff := cmp.Diff(tt.want, results(out)); diff != "" {
				t.Fatalf("apply (-want +got):\n%s", diff)
			}
			if len(out) == 2 && !errors.Is(out[1].Err, syscall.EPERM) {
				t.Errorf("the failure says %v", out[1].Err)
			}
		})
	}
}

func TestApplyRevertsWhatTheKernelDidNotTake(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	n.et.setRequested(t, "vxlan0", map[string]bool{detect.FeatureTxChecksumGeneric: false})
	n.et.stuck[detect.FeatureTxChecksumGeneric] = true
	before := n.et.state("vxlan0")
	s := n.snapshot(t)
	p := Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
	tu := openTuner(t, t.TempDir(), n.host)
	out := tu.applyProposed(ctx, p)
	if diff := cmp.Diff([]result{{"vxlan0 tx-checksum-ip-generic", Reverted}}, results(out)); diff != "" {
		t.Fatalf("apply (-want +got):\n%s", diff)
	}
	if !strings.Contains(out[0].Err.Error(), "did not take") {
		t.Errorf("reverted outcome says %v", out[0].Err)
	}
	if diff := cmp.Diff(before, n.et.state("vxlan0")); diff != "" {
		t.Errorf("vxlan0 after revert (-before +after):\n%s", diff)
	}
	if len(tu.Entries()) != 0 {
		t.Errorf("a reverted change stays claimed: %+v", tu.Entries())
	}
}

func TestApplyRefusesStaleAndUnvetted(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	s := loadedSnapshot(t, n)
	p := Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.SoftnetDrops}})
	// Someone raised the backlog between the snapshot and the apply.
	os.WriteFile(filepath.Join(n.proc, "sys/net/core/netdev_max_backlog"), []byte("1500\n"), 0o644)
	handmade := Plan{Changes: []Change{{Key: Key{Kind: rules.ChangeSysctl, Target: SysctlBudget}, From: "300", To: "100000"}}}
	tu := openTuner(t, t.TempDir(), n.host)
	out := append(tu.applyProposed(ctx, p), tu.Apply(ctx, handmade)...)
	want := []result{{SysctlMaxBacklog, Refused}, {SysctlBudget, Verified}, {SysctlBudget, Refused}}
	if diff := cmp.Diff(want, results(out)); diff != "" {
		t.Fatalf("apply (-want +got):\n%s", diff)
	}
	if !strings.Contains(out[0].Err.Error(), "changed since the snapshot") || !errors.Is(out[2].Err, ErrNotAllowed) {
		t.Errorf("refusals: %v; %v", out[0].Err, out[2].Err)
	}
	if got := readFile(t, filepath.Join(n.proc, "sys/net/core/netdev_max_backlog")); got != "1500" {
		t.Errorf("backlog = %s, want the 1500 someone else set", got)
	}
}

func TestApplyMissingDevice(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	s := loadedSnapshot(t, n)
	p := Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
	delete(n.et.devs, "vxlan0") // the device went away after the snapshot
	dir := t.TempDir()
	tu := openTuner(t, dir, n.host)
	out := tu.applyProposed(ctx, p)
	if len(out) != 1 || out[0].Result != Failed || !errors.Is(out[0].Err, detect.ErrGone) {
		t.Fatalf("apply on a missing device: %v", out)
	}
	if !strings.Contains(out[0].Err.Error(), "vxlan0") {
		t.Errorf("error does not name the device: %v", out[0].Err)
	}
	if st, _ := parseJournal([]byte(readFile(t, filepath.Join(dir, JournalFile)) + "\n")); len(st.entries) != 0 {
		t.Errorf("a change that was never attempted was journaled: %+v", st.entries[0])
	}
}

func TestRollbackLeavesOthersChangesAlone(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	s := loadedSnapshot(t, n)
	p := Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.SoftnetDrops, rules.TunnelTxChecksumOff}})
	tu := openTuner(t, t.TempDir(), n.host)
	tu.applyProposed(ctx, p)
	// An operator sets the budget by hand, and Felix turns offload off.
	budget := filepath.Join(n.proc, "sys/net/core/netdev_budget")
	os.WriteFile(budget, []byte("900\n"), 0o644)
	n.et.setRequested(t, "vxlan0", map[string]bool{detect.FeatureTxChecksumGeneric: false})

	dry := tu.Rollback(ctx, true)
	want := []result{
		{SysctlBudget, Conflict},
		{"vxlan0 tx-checksum-ip-generic", Closed},
		{SysctlMaxBacklog, Planned},
	}
	if diff := cmp.Diff(want, results(dry)); diff != "" {
		t.Fatalf("dry run (-want +got):\n%s", diff)
	}
	if got := dry[2].Command; got != "sysctl -w net.core.netdev_max_backlog=1000" {
		t.Errorf("dry-run command %q", got)
	}
	if len(tu.Entries()) != 3 || readFile(t, filepath.Join(n.proc, "sys/net/core/netdev_max_backlog")) != "2000" {
		t.Fatalf("the dry run changed something")
	}

	out := tu.Rollback(ctx, false)
	want[2].Result = Restored
	if diff := cmp.Diff(want, results(out)); diff != "" {
		t.Fatalf("rollback (-want +got):\n%s", diff)
	}
	if !strings.Contains(out[0].Err.Error(), "someone else changed it") {
		t.Errorf("conflict says %v", out[0].Err)
	}
	if got := readFile(t, budget); got != "900" {
		t.Errorf("rollback clobbered the operator's budget: %s", got)
	}
	if n.et.changes != 0 {
		t.Errorf("rollback wrote %d ethtool changes to a value already at its original", n.et.changes)
	}
}

func TestRollbackChainsRepeatedRaises(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	tu := openTuner(t, t.TempDir(), n.host)
	for range 3 {
		s := loadedSnapshot(t, n)
		out := tu.applyProposed(ctx, Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.SoftnetDrops}}))
		for _, o := range out {
			if o.Result != Verified {
				t.Fatalf("apply: %s", o)
			}
		}
	}
	if got := readFile(t, filepath.Join(n.proc, "sys/net/core/netdev_budget")); got != "2400" {
		t.Errorf("budget after three steps = %s, want 2400 (300, 600, 1200, capped at 2400)", got)
	}
	// A dry run walks the same chain: each step starts where the newer
	// one would have left the setting.
	var commands []string
	for _, o := range tu.Rollback(ctx, true) {
		if o.Change.Target == SysctlBudget {
			if o.Result != Planned {
				t.Errorf("dry run: %s", o)
			}
			commands = append(commands, o.Command)
		}
	}
	want := []string{"sysctl -w net.core.netdev_budget=1200", "sysctl -w net.core.netdev_budget=600", "sysctl -w net.core.netdev_budget=300"}
	if diff := cmp.Diff(want, commands); diff != "" {
		t.Errorf("dry-run commands (-want +got):\n%s", diff)
	}
	tu.Rollback(ctx, false)
	if got := readFile(t, filepath.Join(n.proc, "sys/net/core/netdev_budget")); got != "300" {
		t.Errorf("budget after rollback = %s, want 300", got)
	}
}

// TestRollbackKeepsOlderEntriesBehindAFailedRestore raises the budget
// twice and makes the restore of the second step fail: the first step's
// entry must stay open (its original is the one that matters), not be
// released as someone else's change, and a later rollback restores both.
func TestRollbackKeepsOlderEntriesBehindAFailedRestore(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	broken := errors.New("the kernel refused it")
	sys := &flakySystem{System: n.host}
	tu := openTuner(t, t.TempDir(), sys)
	for range 2 {
		s := loadedSnapshot(t, n)
		for _, o := range tu.applyProposed(ctx, Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.SoftnetDrops}})) {
			if o.Result != Verified {
				t.Fatalf("apply: %s", o)
			}
		}
	}
	budget := filepath.Join(n.proc, "sys/net/core/netdev_budget")
	if got := readFile(t, budget); got != "1200" {
		t.Fatalf("budget after two steps = %s, want 1200", got)
	}
	sys.fail = func(k Key, v string) error {
		if k.Target == SysctlBudget && v == "600" {
			return broken
		}
		return nil
	}

	out := tu.Rollback(ctx, false)
	want := []result{
		{SysctlBudget, Failed},       // 1200 -> 600 fails
		{SysctlMaxBacklog, Restored}, // 4000 -> 2000
		{SysctlBudget, Failed},       // 600 -> 300 must wait for it
		{SysctlMaxBacklog, Restored}, // 2000 -> 1000
	}
	if diff := cmp.Diff(want, results(out)); diff != "" {
		t.Fatalf("rollback (-want +got):\n%s", diff)
	}
	if !errors.Is(out[0].Err, broken) {
		t.Errorf("the failed restore says %v", out[0].Err)
	}
	if err := out[2].Err; err == nil || !strings.Contains(err.Error(), "a newer change to this setting was not undone first") {
		t.Errorf("the older entry says %v", err)
	}
	if got := readFile(t, budget); got != "1200" {
		t.Errorf("budget = %s, want 1200 untouched", got)
	}
	open := tu.Entries()
	if len(open) != 2 || open[0].To != "1200" || open[1].To != "600" || open[1].Original.Set != "300" {
		t.Fatalf("open entries after the failed rollback: %+v", open)
	}

	sys.fail = nil
	again := tu.Rollback(ctx, false)
	if diff := cmp.Diff([]result{{SysctlBudget, Restored}, {SysctlBudget, Restored}}, results(again)); diff != "" {
		t.Errorf("second rollback (-want +got):\n%s", diff)
	}
	if got := readFile(t, budget); got != "300" {
		t.Errorf("budget after the second rollback = %s, want its original 300", got)
	}
}

func TestReconcile(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	dir := t.TempDir()
	tu := openTuner(t, dir, n.host)
	budget := Change{Key: Key{Kind: rules.ChangeSysctl, Target: SysctlBudget}, To: "600", Rule: "r", Subject: "s"}
	backlog := Change{Key: Key{Kind: rules.ChangeSysctl, Target: SysctlMaxBacklog}, To: "2000", Rule: "r", Subject: "s"}
	rps := Change{Key: Key{Kind: rules.ChangeRPS, Target: "eth0/rx-0"}, To: "3", Rule: "r", Subject: "s"}
	// A process recorded three intents and died: the budget was never
	// written, the backlog was, and the RPS mask was then set by someone
	// else to a third value.
	for _, c := range []Change{budget, backlog, rps} {
		cur, err := n.host.Read(ctx, c.Key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tu.j.intent(c, cur, "crashed", tu.netns, nil); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(n.proc, "sys/net/core/netdev_max_backlog"), []byte("2000\n"), 0o644)
	os.WriteFile(filepath.Join(n.sys, "class/net/eth0/queues/rx-0/rps_cpus"), []byte("1\n"), 0o644)
	tu.Close()

	tu = openTuner(t, dir, n.host)
	out := tu.Reconcile(ctx)
	want := []result{
		{"eth0/rx-0", Conflict},
		{SysctlMaxBacklog, Verified},
		{SysctlBudget, Closed},
	}
	if diff := cmp.Diff(want, results(out)); diff != "" {
		t.Fatalf("reconcile (-want +got):\n%s", diff)
	}
	// Rollback and reconcile classify alike, and say so alike.
	if err := out[0].Err; err == nil || !strings.Contains(err.Error(), "is now 1, neither its original 0 nor the 3 nodetune set: someone else changed it") {
		t.Errorf("reconcile's conflict says %v", err)
	}
	if e := tu.Entries(); len(e) != 1 || e[0].Key.Target != SysctlMaxBacklog {
		t.Errorf("entries after reconcile: %+v", e)
	}
	if again := tu.Reconcile(ctx); len(again) != 0 {
		t.Errorf("a second reconcile did %v", results(again))
	}
}

func TestEntriesFromAnotherNetns(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	tu := openTuner(t, t.TempDir(), n.host)
	c := Change{Key: Key{Kind: rules.ChangeSysctl, Target: SysctlBudget}, To: "600"}
	if _, err := tu.j.intent(c, Value{Set: "300", Effective: "300"}, "other", "net:[1]", nil); err != nil {
		t.Fatal(err)
	}
	tu.netns = "net:[2]"
	// A process of the fixture's procfs is in namespace 1.
	pid := filepath.Join(n.proc, "42")
	for _, d := range []string{"task/42/ns", "fd"} {
		if err := os.MkdirAll(filepath.Join(pid, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(pid, "mountinfo"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("net:[1]", filepath.Join(pid, "task/42/ns/net")); err != nil {
		t.Fatal(err)
	}
	out := tu.Rollback(ctx, false)
	if len(out) != 1 || out[0].Result != Failed || !strings.Contains(out[0].Err.Error(), "network namespace 1") {
		t.Fatalf("rollback of another namespace's entry: %v", out)
	}
	if len(tu.Entries()) != 1 {
		t.Errorf("the entry was closed from the wrong namespace")
	}
}

// TestEntriesFromAGoneNetns: once nothing holds the namespace an entry was
// made in (no task in it, no descriptor or mount of it), its setting went
// with it: rollback closes the entry as gone, which is no failure, and the
// journal keeps the record.
func TestEntriesFromAGoneNetns(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	seesKernelThreads(t, n)
	dir := t.TempDir()
	tu := openTuner(t, dir, n.host)
	c := Change{Key: Key{Kind: rules.ChangeSysctl, Target: SysctlBudget}, To: "600"}
	if _, err := tu.j.intent(c, Value{Set: "300", Effective: "300"}, "other", "net:[1]", nil); err != nil {
		t.Fatal(err)
	}
	tu.netns = "net:[2]"
	if dry := tu.Rollback(ctx, true); len(dry) != 1 || dry[0].Result != Gone || len(tu.Entries()) != 1 {
		t.Fatalf("dry run: %v, entries %d", dry, len(tu.Entries()))
	}
	out := tu.Rollback(ctx, false)
	if len(out) != 1 || out[0].Result != Gone || !out[0].Ok() || !errors.Is(out[0].Err, ErrGone) || !strings.Contains(out[0].Err.Error(), "network namespace 1") {
		t.Fatalf("rollback of a gone namespace's entry: %v", out)
	}
	if len(tu.Entries()) != 0 {
		t.Errorf("the entry stays open")
	}
	if e := entries(t, dir); len(e) != 1 || e[0].State != evGone {
		t.Errorf("journal: %+v", e)
	}
	if again := tu.Rollback(ctx, false); len(again) != 0 {
		t.Errorf("a second rollback: %v", again)
	}
}

// seesKernelThreads gives n's procfs the kernel's kthreadd at PID 2, as a
// procfs of the host's PID namespace shows it.
func seesKernelThreads(t *testing.T, n *node) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(n.proc, "2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.proc, "2", "comm"), []byte("kthreadd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestNetNSInAPartialProcfsIsUnknown: a procfs that shows no kernel
// threads is another PID namespace's (a pod without hostPID), which sees
// only some of the node's processes. A namespace none of them holds may be
// held by one it cannot see: the entry stays open, as unknown, and is never
// closed as gone (the host's own namespace would be among them).
func TestNetNSInAPartialProcfsIsUnknown(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	dir := t.TempDir()
	tu := openTuner(t, dir, n.host)
	c := Change{Key: Key{Kind: rules.ChangeSysctl, Target: SysctlBudget}, To: "600"}
	if _, err := tu.j.intent(c, Value{Set: "300", Effective: "300"}, "other", "net:[1]", nil); err != nil {
		t.Fatal(err)
	}
	tu.netns = "net:[2]"
	out := tu.Rollback(ctx, false)
	if len(out) != 1 || out[0].Result != Failed || errors.Is(out[0].Err, ErrGone) || !strings.Contains(out[0].Err.Error(), "PID namespace") {
		t.Fatalf("rollback of an entry whose namespace a partial procfs does not show: %v", out)
	}
	if len(tu.Entries()) != 1 {
		t.Errorf("the entry was closed")
	}
}

func TestHostFixtureErrors(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	for _, tt := range []struct {
		key  Key
		want error
	}{
		{Key{Kind: rules.ChangeSysctl, Target: "kernel.panic"}, ErrNotAllowed},
		{Key{Kind: rules.ChangeRPS, Target: "eth0/../../rx-0"}, ErrNotAllowed},
		{Key{Kind: rules.ChangeRPS, Target: "eth9/rx-0"}, detect.ErrGone},
		{Key{Kind: rules.ChangeFeature, Target: "eth9", Setting: detect.FeatureTSO}, detect.ErrGone},
		{Key{Kind: rules.ChangeFeature, Target: "vxlan0", Setting: "tx-nonsense"}, ErrNotAllowed},
		{Key{Kind: rules.ChangeFeature, Target: "vxlan0", Setting: detect.FeatureGRO}, ErrNotAllowed},
		{Key{Kind: rules.ChangeModule, Target: "ip_vs"}, detect.ErrNotSupported},
		{Key{Kind: "route", Target: "x"}, ErrNotAllowed},
	} {
		if err := n.host.Writable(ctx, tt.key); !errors.Is(err, tt.want) {
			t.Errorf("Writable(%v) = %v, want %v", tt.key, err, tt.want)
		}
	}
	n.et.devs["vxlan0"][detect.FeatureTSO6] = ethtool.FeatureState{} // fixed off by the driver
	fixed := Key{Kind: rules.ChangeFeature, Target: "vxlan0", Setting: detect.FeatureTSO6}
	if err := n.host.Writable(ctx, fixed); !errors.Is(err, detect.ErrNotSupported) || !strings.Contains(err.Error(), "fixed") {
		t.Errorf("Writable(fixed feature) = %v", err)
	}
	// go-sysctl would create a missing file; the host must not.
	os.Remove(filepath.Join(n.proc, "sys/net/core/netdev_budget"))
	if err := n.host.Write(ctx, Key{Kind: rules.ChangeSysctl, Target: SysctlBudget}, "600"); !errors.Is(err, detect.ErrGone) {
		t.Errorf("writing a missing sysctl: %v", err)
	}
	if _, err := os.Stat(filepath.Join(n.proc, "sys/net/core/netdev_budget")); err == nil {
		t.Errorf("writing a missing sysctl created it")
	}
}

// TestFeaturesOffTheAllowlist checks that the host itself refuses an
// ethtool feature off the allowlist, for reads and writes alike, so that
// rollback cannot be made to write one by a journal entry.
func TestFeaturesOffTheAllowlist(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	gro := Key{Kind: rules.ChangeFeature, Target: "vxlan0", Setting: detect.FeatureGRO}
	if _, err := n.host.Read(ctx, gro); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("Read(%v) = %v, want ErrNotAllowed", gro, err)
	}
	if err := n.host.Write(ctx, gro, off); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("Write(%v) = %v, want ErrNotAllowed", gro, err)
	}
	tu := openTuner(t, t.TempDir(), n.host)
	if _, err := tu.j.intent(Change{Key: gro, To: off, Rule: "r", Subject: "s"}, Value{Set: on, Effective: on}, "forged", tu.netns, nil); err != nil {
		t.Fatal(err)
	}
	n.et.setRequested(t, "vxlan0", map[string]bool{detect.FeatureGRO: false})
	out := tu.Rollback(ctx, false)
	if len(out) != 1 || out[0].Result != Failed || !errors.Is(out[0].Err, ErrNotAllowed) {
		t.Fatalf("rollback of a feature off the allowlist: %v", out)
	}
	if n.et.changes != 0 || n.et.devs["vxlan0"][detect.FeatureGRO].Requested {
		t.Errorf("rollback wrote %s", gro)
	}
}

func TestModulesDisabled(t *testing.T) {
	ctx := context.Background()
	proc := fixtureTree(t, map[string]string{
		"modules":                     "ip_vs 1 0 - Live 0x0\nnf_nat 2 1 ip_vs, Live 0x0\n",
		"sys/kernel/modules_disabled": "1\n",
	})
	sys := fixtureTree(t, map[string]string{"module/ip_vs_rr/refcnt": "0\n"})
	h := NewHost(proc, sys, newKernelEthtool())
	for m, want := range map[string]string{"ip_vs": moduleLoaded, "ip_vs_rr": moduleLoaded, "ip_vs_sh": moduleUnloaded} {
		v, err := h.Read(ctx, Key{Kind: rules.ChangeModule, Target: m})
		if err != nil || v.Set != want {
			t.Errorf("Read(%s) = %v, %v; want %s", m, v, err, want)
		}
	}
	err := h.Writable(ctx, Key{Kind: rules.ChangeModule, Target: "ip_vs_sh"})
	if !errors.Is(err, detect.ErrNotSupported) || !strings.Contains(err.Error(), "modules_disabled") {
		t.Errorf("Writable with modules disabled: %v", err)
	}
}

// TestModulesBuiltIn: on a kernel that builds IPVS in and has no loadable
// modules, /sys/module shows only ip_vs (the schedulers have no
// parameters); modules.builtin lists them all. tune must find them there
// and write nothing, instead of failing to load what is already in.
func TestModulesBuiltIn(t *testing.T) {
	ctx := context.Background()
	proc := fixtureTree(t, map[string]string{"sys/kernel/osrelease": "6.12.0-1-cloud-amd64\n"})
	sys := fixtureTree(t, map[string]string{"module/ip_vs/parameters/conn_tab_bits": "12\n"})
	root := fixtureTree(t, map[string]string{"lib/modules/6.12.0-1-cloud-amd64/modules.builtin": "kernel/net/netfilter/ipvs/ip_vs.ko\n" +
		"kernel/net/netfilter/ipvs/ip_vs_rr.ko\nkernel/net/netfilter/ipvs/ip_vs_wrr.ko\nkernel/net/netfilter/ipvs/ip_vs_sh.ko\n"})
	h := NewHost(proc, sys, newKernelEthtool())
	h.RootFS = root
	for _, m := range detect.IPVSModuleNames {
		if v, err := h.Read(ctx, Key{Kind: rules.ChangeModule, Target: m}); err != nil || v.Set != moduleLoaded {
			t.Errorf("Read(%s) = %v, %v; want %s", m, v, err, moduleLoaded)
		}
	}
	// A snapshot from a probe that missed them plans their loading.
	s := &detect.Snapshot{KubeProxy: detect.KubeProxy{Running: true, Mode: "ipvs", Version: kubeProxy126, IPVSModules: map[string]bool{"ip_vs": true}}}
	dir := t.TempDir()
	out := openTuner(t, dir, h).applyProposed(ctx, Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{}))
	want := []result{{"ip_vs_rr", Unchanged}, {"ip_vs_wrr", Unchanged}, {"ip_vs_sh", Unchanged}}
	if diff := cmp.Diff(want, results(out)); diff != "" {
		t.Errorf("apply (-want +got):\n%s", diff)
	}
	if e := entries(t, dir); len(e) != 0 {
		t.Errorf("journaled loading a built-in module: %+v", e[0])
	}
}

// TestModulesThroughModprobe loads modules on a fixture host whose
// modprobe is a script that edits the fixture's /proc/modules, as the real
// one changes the real file, and logs every call. Loading is irreversible:
// neither a revert nor a rollback (dry or not) ever runs modprobe -r, which
// could take ip_vs from under a running kube-proxy.
func TestModulesThroughModprobe(t *testing.T) {
	ctx := context.Background()
	proc := fixtureTree(t, map[string]string{
		"modules":                     "ip_vs 180224 0 - Live 0x0\n",
		"sys/kernel/modules_disabled": "0\n",
	})
	bin := t.TempDir()
	modprobe, calls := filepath.Join(bin, "modprobe"), filepath.Join(bin, "calls")
	script := `#!/bin/sh
# usage: modprobe [-r] -- NAME
echo "$@" >> "` + calls + `"
mods="` + filepath.Join(proc, "modules") + `"
if [ "$1" = "-r" ]; then grep -v "^$3 " "$mods" > "$mods.new"; mv "$mods.new" "$mods"; exit 0; fi
if [ "$2" = "ip_vs_wrr" ]; then echo "modprobe: FATAL: Module $2 not found in directory /lib/modules" >&2; exit 1; fi
if [ "$2" = "ip_vs_sh" ]; then exit 0; fi # claims success, loads nothing
echo "$2 16384 0 - Live 0x0" >> "$mods"
`
	if err := os.WriteFile(modprobe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h := NewHost(proc, t.TempDir(), newKernelEthtool())
	h.Modprobe = modprobe
	s := &detect.Snapshot{KubeProxy: detect.KubeProxy{Running: true, Mode: "ipvs", Version: kubeProxy126, IPVSModules: map[string]bool{"ip_vs": true}}}
	p := Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{})
	tu := openTuner(t, t.TempDir(), h)
	out := tu.applyProposed(ctx, p)
	want := []result{{"ip_vs_rr", Verified}, {"ip_vs_wrr", Failed}, {"ip_vs_sh", Reverted}}
	if diff := cmp.Diff(want, results(out)); diff != "" {
		t.Fatalf("apply (-want +got):\n%s", diff)
	}
	if err := out[1].Err.Error(); !strings.Contains(err, "not found in directory") || !strings.Contains(err, "unchanged") {
		t.Errorf("failed load says %q", err)
	}
	if err := out[2].Err.Error(); !strings.Contains(err, "did not take") {
		t.Errorf("a load that did not happen says %q", err)
	}

	dry := tu.Rollback(ctx, true)
	if diff := cmp.Diff([]result{{"ip_vs_rr", Closed}}, results(dry)); diff != "" {
		t.Errorf("dry run (-want +got):\n%s", diff)
	}
	for _, o := range dry {
		if o.Command != "" || !strings.Contains(o.Note, "left loaded: unloading could break kube-proxy") {
			t.Errorf("dry run of %s: command %q, note %q", o.Change.Key, o.Command, o.Note)
		}
	}
	back := tu.Rollback(ctx, false)
	if diff := cmp.Diff([]result{{"ip_vs_rr", Closed}}, results(back)); diff != "" {
		t.Errorf("rollback (-want +got):\n%s", diff)
	}
	if len(tu.Entries()) != 0 {
		t.Errorf("rollback left module entries open: %+v", tu.Entries())
	}
	if got := readFile(t, filepath.Join(proc, "modules")); got != "ip_vs 180224 0 - Live 0x0\nip_vs_rr 16384 0 - Live 0x0" {
		t.Errorf("/proc/modules after rollback: %q; the loaded modules must stay", got)
	}
	if got := readFile(t, calls); strings.Contains(got, "-r") {
		t.Errorf("modprobe -r was run:\n%s", got)
	}
	if err := h.Write(ctx, Key{Kind: rules.ChangeModule, Target: "ip_vs"}, moduleUnloaded); err == nil || !strings.Contains(err.Error(), "never unloads") {
		t.Errorf("writing a module unloaded: %v", err)
	}
}
