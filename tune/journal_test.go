package tune

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/rules"
)

var budgetChange = Change{Key: Key{Kind: rules.ChangeSysctl, Target: SysctlBudget}, To: "600", Rule: rules.SoftnetDrops, Subject: "netdev_budget"}

// writeJournal makes a journal in a new directory with one verified entry
// and returns the directory and the file's bytes.
func writeJournal(t *testing.T) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	j, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := j.intent(budgetChange, Value{Set: "300", Effective: "300"}, "run1", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []string{evApplied, evVerified} {
		if err := j.event(e, ev, nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	j.close()
	b, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	return dir, b
}

func TestJournalReopens(t *testing.T) {
	dir, _ := writeJournal(t)
	j, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	open := j.open()
	if len(open) != 1 {
		t.Fatalf("open entries: %+v", open)
	}
	e := open[0]
	want := Entry{ID: 2, Key: budgetChange.Key, Original: Value{"300", "300"}, To: "600", Rule: rules.SoftnetDrops,
		Subject: "netdev_budget", Run: "run1", At: e.At, State: evVerified}
	if diff := cmp.Diff(want, *e); diff != "" {
		t.Errorf("entry (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(filepath.Join(dir, JournalFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode: %v, %v", fi.Mode(), err)
	}
}

// TestJournalRefusesBadFiles checks that a journal nodetune does not fully
// understand is refused with ErrJournal, is left byte for byte as it was,
// and stops any write to the host.
func TestJournalRefusesBadFiles(t *testing.T) {
	_, good := writeJournal(t)
	lines := bytes.SplitAfter(good, []byte("\n"))
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		off := len(bytes.Join(lines[:i], nil)) + len(lines[i])/2
		b[off] ^= 0x01
		return b
	}
	header := func(version string) []byte {
		r, _ := encodeLine(record{Seq: 1, Event: evHeader, Format: journalFormat})
		return bytes.Replace(r, []byte(`"event":"header"`), []byte(`"event":"header","version":`+version), 1)
	}
	newer, _ := encodeLine(record{Seq: 1, Event: evHeader, Format: journalFormat, Version: journalVersion + 1})
	tests := []struct {
		name, content, want string
	}{
		{"foreign text", "net.core.netdev_budget = 300\n", "not a nodetune journal"},
		{"foreign JSON", `{"seq":1,"event":"header"}` + "\n", "not a nodetune journal"},
		{"flipped bit in the header", string(flip(0)), "line 1"},
		{"flipped bit in a record", string(flip(1)), "line 2: journal unusable: corrupt record"},
		{"flipped bit in the middle", string(flip(2)), "line 3"},
		{"newer version", string(newer), "written by a newer nodetune"},
		{"forged checksum, unknown version", string(header("0")), "line 1"},
		{"records out of order", string(lines[0]) + string(lines[1]) + string(lines[3]) + string(lines[2]), "sequence"},
		{"event without intent", string(lines[0]) + string(lines[2]), "has no intent"},
		{"foreign text without a newline", "net.core.netdev_budget = 300", "no header"},
		{"a long first line cut short", string(good[:20]) + strings.Repeat("x", 1000), "no header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			dir := t.TempDir()
			path := filepath.Join(dir, JournalFile)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir, n.host)
			if !errors.Is(err, ErrJournal) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open: %v; want ErrJournal saying %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "left as it is") {
				t.Errorf("error does not name the file or say it is kept: %v", err)
			}
			if got, _ := os.ReadFile(path); string(got) != tt.content {
				t.Errorf("the journal was modified:\n%q\nwant\n%q", got, tt.content)
			}
			if n.et.changes != 0 {
				t.Errorf("something was written to the host")
			}
		})
	}
}

// TestJournalTornTail checks a journal whose last line was cut short by a
// crash in the middle of its write: that record was never committed (the
// host write waits for it), so it is acknowledged and ignored.
func TestJournalTornTail(t *testing.T) {
	dir, good := writeJournal(t)
	torn, _ := encodeLine(record{Seq: 5, Event: evIntent, Key: &Key{Kind: rules.ChangeSysctl, Target: SysctlMaxBacklog}, Original: &Value{"1000", "1000"}, To: "2000"})
	path := filepath.Join(dir, JournalFile)
	for _, cut := range []int{len(torn) / 2, len(torn) - 1} { // mid-record, and all but the newline
		t.Run("", func(t *testing.T) {
			os.WriteFile(path, append(bytes.Clone(good), torn[:cut]...), 0o600)
			for i := range 2 { // the acknowledgement must itself read back
				j, err := openJournal(dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range j.open() {
					if e.Key.Target != SysctlBudget {
						t.Errorf("the torn record became an entry: %+v", e)
					}
				}
				if got := len(j.open()); got != i+1 {
					t.Errorf("open %d: %d entries, want %d", i, got, i+1)
				}
				if _, err := j.intent(budgetChange, Value{"600", "600"}, "run2", "", nil); err != nil {
					t.Fatal(err)
				}
				j.close()
			}
			b, _ := os.ReadFile(path)
			if !bytes.HasPrefix(b, append(bytes.Clone(good), torn[:cut]...)) {
				t.Errorf("the torn journal was rewritten, not appended to")
			}
		})
	}
}

// TestJournalTornHeader: a process that died while writing the header of
// a new journal leaves a partial first line. No host write can precede the
// header, so the journal is taken as empty: the header is written again,
// and a torn record says what was discarded.
func TestJournalTornHeader(t *testing.T) {
	_, good := writeJournal(t)
	header := good[:bytes.IndexByte(good, '\n')]
	for _, cut := range []int{1, 8, 20, len(header)} {
		t.Run("", func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, JournalFile)
			os.WriteFile(path, header[:cut], 0o600)
			for range 2 {
				j, err := openJournal(dir)
				if err != nil {
					t.Fatalf("open with %d bytes of header: %v", cut, err)
				}
				if len(j.open()) != 0 {
					t.Errorf("entries: %+v", j.open())
				}
				j.close()
			}
			b, _ := os.ReadFile(path)
			st, err := parseJournal(b)
			if err != nil || st.lines != 2 {
				t.Fatalf("journal after open: %v, %q", err, b)
			}
			r, err := decodeLine(bytes.SplitN(b, []byte("\n"), 3)[1])
			if err != nil || r.Event != evTorn || !strings.Contains(r.Note, fmt.Sprintf("partial header (%d bytes)", cut)) {
				t.Errorf("second record: %+v, %v", r, err)
			}
		})
	}
}

// TestOpenReadOnly reads a journal that another Tuner holds, with a torn
// last line: a dry-run rollback plans from it, nothing can be written
// through it, and the file stays byte for byte as it was.
func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	dir := t.TempDir()
	path := filepath.Join(dir, JournalFile)
	holder := openTuner(t, dir, n.host)
	s := loadedSnapshot(t, n)
	holder.applyProposed(ctx, Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.SoftnetDrops}}))
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"crc":"0`)
	f.Close()
	journal, _ := os.ReadFile(path)
	files := n.files(t)

	ro, err := OpenReadOnly(dir, n.host)
	if err != nil {
		t.Fatalf("OpenReadOnly while another Tuner holds the journal: %v", err)
	}
	defer ro.Close()
	dry := ro.Rollback(ctx, true)
	if diff := cmp.Diff([]result{{SysctlBudget, Planned}, {SysctlMaxBacklog, Planned}}, results(dry)); diff != "" {
		t.Errorf("dry run (-want +got):\n%s", diff)
	}
	for what, out := range map[string][]Outcome{
		"rollback":  ro.Rollback(ctx, false),
		"reconcile": ro.Reconcile(ctx),
		"apply":     ro.applyProposed(ctx, Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{})),
	} {
		for _, o := range out {
			if o.Result != Failed && o.Result != Refused || o.Result == Failed && !strings.Contains(o.Err.Error(), "read-only") {
				t.Errorf("%s through a read-only journal: %s", what, o)
			}
		}
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, journal) {
		t.Errorf("the read-only journal was written")
	}
	if diff := cmp.Diff(files, n.files(t)); diff != "" {
		t.Errorf("the host was written through a read-only journal:\n%s", diff)
	}

	empty := t.TempDir()
	ro, err = OpenReadOnly(empty, n.host)
	if err != nil || len(ro.Entries()) != 0 || JournalExists(empty) {
		t.Errorf("a missing journal read-only: %v, %d entries, created %t", err, len(ro.Entries()), JournalExists(empty))
	}
	os.WriteFile(filepath.Join(empty, JournalFile), journal[:10], 0o600) // a torn header
	if ro, err = OpenReadOnly(empty, n.host); err != nil || len(ro.Entries()) != 0 {
		t.Errorf("a torn header read-only: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(empty, JournalFile)); !bytes.Equal(got, journal[:10]) {
		t.Errorf("a torn header was repaired by a read-only open")
	}
}

func TestJournalLock(t *testing.T) {
	n := newNode(t)
	dir := t.TempDir()
	first := openTuner(t, dir, n.host)
	if _, err := Open(dir, n.host); !errors.Is(err, ErrJournal) || !strings.Contains(err.Error(), "another nodetune process") {
		t.Fatalf("second Open: %v", err)
	}
	first.Close()
	second, err := Open(dir, n.host)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	second.Close()
}

func TestJournalEmptyFileGetsHeader(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, JournalFile), nil, 0o600) // a creator died before its header
	tu := openTuner(t, dir, newNode(t).host)
	tu.Close()
	b, _ := os.ReadFile(filepath.Join(dir, JournalFile))
	if st, err := parseJournal(b); err != nil || st.lines != 1 {
		t.Errorf("journal after Open: %v, %q", err, b)
	}
}

func TestJournalUnwritable(t *testing.T) {
	n := newNode(t)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Open(filepath.Join(file, "state"), n.host); err == nil || !strings.Contains(err.Error(), "creating the state directory") {
		t.Errorf("Open under a file: %v", err)
	}
	// Apply stops at the first journal write that fails, before the host.
	dir := t.TempDir()
	tu := openTuner(t, dir, n.host)
	tu.j.f.Close()
	s := loadedSnapshot(t, n)
	out := tu.applyProposed(context.Background(), Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.SoftnetDrops}}))
	if len(out) != 2 || out[0].Result != Failed || out[1].Result != Failed || !errors.Is(out[1].Err, errJournalDown) {
		t.Fatalf("apply with a dead journal: %v", out)
	}
	if got := readFile(t, filepath.Join(n.proc, "sys/net/core/netdev_max_backlog")); got != "1000" {
		t.Errorf("the host was written without a journal record: backlog %s", got)
	}
}

func FuzzParseJournal(f *testing.F) {
	dir := f.TempDir()
	j, err := openJournal(dir)
	if err != nil {
		f.Fatal(err)
	}
	e, _ := j.intent(budgetChange, Value{"300", "300"}, "r", "", nil)
	j.event(e, evApplied, nil, "")
	j.event(e, evRestored, &Value{"300", "300"}, "")
	j.close()
	good, _ := os.ReadFile(filepath.Join(dir, JournalFile))
	f.Add(good)
	f.Add(v2Seed(f))
	f.Add(good[:len(good)-7])
	f.Add(good[:20])
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"crc":"00000000","rec":{}}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseJournal(data)
		if err != nil {
			if !errors.Is(err, ErrJournal) {
				t.Fatalf("error without ErrJournal: %v", err)
			}
			return
		}
		for _, e := range st.entries {
			if e.Key.Kind == "" && e.Key.Target == "" || e.To == "" || st.byID[e.ID] != e {
				t.Fatalf("accepted an incomplete entry: %+v", e)
			}
		}
		if st.tornHeader > 0 && (st.lines > 0 || len(st.entries) > 0 || st.tornHeader != len(data)) {
			t.Fatalf("a torn header with more in the file: %+v", st)
		}
	})
}

func FuzzParseCPUMask(f *testing.F) {
	for _, s := range []string{"0", "3", "00000003", "ffffffff,ffffffff", "1,00000000", "f\n", "", ",", "123456789", "g"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseCPUMask(s)
		if err != nil {
			return
		}
		again, err := ParseCPUMask(m.String())
		if err != nil || !again.Equal(m) {
			t.Fatalf("%q -> %q does not parse back to the same mask: %v", s, m.String(), err)
		}
		if h := m.Highest(); (h < 0) != m.Empty() || h >= 32*256 {
			t.Fatalf("%q: highest CPU %d", s, h)
		}
		if cpus := m.CPUs(); len(cpus) > 0 && cpus[len(cpus)-1] != m.Highest() || len(cpus) == 0 != m.Empty() {
			t.Fatalf("%q: CPUs %v, highest %d", s, cpus, m.Highest())
		}
	})
}

func TestCPUMask(t *testing.T) {
	for in, want := range map[string]struct {
		str     string
		highest int
	}{
		"0": {"0", -1}, "00000000,00000000": {"0", -1}, "3": {"3", 1}, "00000003\n": {"3", 1},
		"1,00000000": {"1,00000000", 32}, "ffffffff,ffffffff": {"ffffffff,ffffffff", 63}, "0,80000000": {"80000000", 31},
	} {
		m, err := ParseCPUMask(in)
		if err != nil || m.String() != want.str || m.Highest() != want.highest {
			t.Errorf("ParseCPUMask(%q) = %q (highest %d), %v; want %q (%d)", in, m.String(), m.Highest(), err, want.str, want.highest)
		}
	}
	for _, in := range []string{"", "x", "123456789", "1,,2", ",1", "-1"} {
		if _, err := ParseCPUMask(in); err == nil {
			t.Errorf("ParseCPUMask(%q) accepted", in)
		}
	}
	forty := make([]int, 40)
	for i := range forty {
		forty[i] = i
	}
	if m := rules.CPUMask(forty); !HostKinds(nil).Equal(Key{Kind: rules.ChangeRPS}, m, "ff,ffffffff") {
		t.Errorf("rules.CPUMask(0..39) = %q does not match the kernel's form", m)
	}
	for in, want := range map[string][]int{"0": nil, "d": {0, 2, 3}, "1,00000001": {0, 32}, "80000000,0": {63}} {
		m, err := ParseCPUMask(in)
		if err != nil || !slices.Equal(m.CPUs(), want) {
			t.Errorf("ParseCPUMask(%q).CPUs() = %v, %v; want %v", in, m.CPUs(), err, want)
		}
	}
}

// failingFile is the journal's file on a disk that fills up: after ok
// whole writes, the next one writes half of its bytes and fails with
// ENOSPC, as write(2) does; with syncErr set, every fsync fails.
type failingFile struct {
	*os.File
	ok      int
	syncErr error
}

func (f *failingFile) Write(b []byte) (int, error) {
	if f.ok > 0 {
		f.ok--
		return f.File.Write(b)
	}
	n, err := f.File.Write(b[:len(b)/2])
	if err == nil {
		err = syscall.ENOSPC
	}
	return n, &os.PathError{Op: "write", Path: f.Name(), Err: err}
}

func (f *failingFile) Sync() error {
	if f.syncErr != nil {
		return f.syncErr
	}
	return f.File.Sync()
}

// TestJournalWriteFailure makes the journal's writes fail as a full disk
// and a failing fsync do. The journal must be cut back to its last
// complete record, refuse every later append for the rest of the process,
// and stop Apply before the host; the next Open must accept the file.
func TestJournalWriteFailure(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		file func(f *os.File) *failingFile
		// entry is the state the budget's entry reopens in, "" for none.
		entry string
	}{
		{"disk full in the intent", func(f *os.File) *failingFile { return &failingFile{File: f} }, ""},
		{"disk full in the applied record", func(f *os.File) *failingFile { return &failingFile{File: f, ok: 1} }, evIntent},
		{"fsync fails", func(f *os.File) *failingFile {
			return &failingFile{File: f, ok: 1 << 20, syncErr: &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}}
		}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			dir := t.TempDir()
			path := filepath.Join(dir, JournalFile)
			tu := openTuner(t, dir, n.host)
			tu.j.w = tt.file(tu.j.f)
			s := loadedSnapshot(t, n)
			plan := Propose(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, PlanOptions{Rules: []string{rules.SoftnetDrops}})
			out := tu.applyProposed(ctx, plan)
			if len(out) != 2 || out[0].Result != Failed || !errors.Is(out[0].Err, ErrJournalWrite) {
				t.Fatalf("apply with a failing journal: %v", out)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) == 0 || b[len(b)-1] != '\n' {
				t.Errorf("the journal was not cut back to a complete record: %q", b)
			}

			// The rest of the process writes nothing, to the journal or the host.
			tu.j.w = tu.j.f
			files := n.files(t)
			again := tu.applyProposed(ctx, plan)
			for _, o := range again {
				if o.Result != Failed || !errors.Is(o.Err, ErrJournalWrite) || !strings.Contains(o.Err.Error(), "an earlier write") {
					t.Errorf("apply after the failure: %s", o)
				}
			}
			if back := tu.Rollback(ctx, false); len(back) > 0 && back[0].Result != Failed {
				t.Errorf("rollback after the failure: %v", back)
			}
			if diff := cmp.Diff(files, n.files(t)); diff != "" {
				t.Errorf("the host was written after the journal failed:\n%s", diff)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
				t.Errorf("the journal was written after it failed")
			}
			tu.Close()

			// The next process accepts the journal, and finds the change
			// whose record was lost.
			tu = openTuner(t, dir, n.host)
			var states []string
			for _, e := range tu.Entries() {
				states = append(states, e.State)
			}
			want := []string{}
			if tt.entry != "" {
				want = append(want, tt.entry)
			}
			if diff := cmp.Diff(want, append([]string{}, states...)); diff != "" {
				t.Errorf("entries after reopening (-want +got):\n%s", diff)
			}
			if rec := tu.Reconcile(ctx); tt.entry != "" && (len(rec) != 1 || rec[0].Result != Verified) {
				t.Errorf("reconcile after reopening: %v", rec)
			}
		})
	}
}

// v2Seed is a journal with what version 2 added: a device identity, a
// target that is not UTF-8, a gone entry, and a hold and its release.
func v2Seed(f *testing.F) []byte {
	dir := f.TempDir()
	j, err := openJournal(dir)
	if err != nil {
		f.Fatal(err)
	}
	k := Key{Kind: rules.ChangeFeature, Target: "vx\xff\x1b", Setting: "tx-checksum-ip-generic"}
	e, err := j.intent(Change{Key: k, To: "on", Rule: "r", Subject: "s"}, Value{"off", "off"}, "r", "net:[1]", &Device{Index: 3, Kind: "vxlan", VNI: 1, Port: 8472})
	if err != nil {
		f.Fatal(err)
	}
	j.event(e, evGone, nil, "deleted")
	r := record{Event: evHold, Key: &k, Rule: "r"}
	setTarget(&r, &k)
	j.append(r, nil)
	j.append(record{Event: evRelease, Entry: j.st.lastSeq}, nil)
	j.close()
	b, _ := os.ReadFile(filepath.Join(dir, JournalFile))
	return b
}
