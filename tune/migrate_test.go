package tune

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// v1Journal is a journal as nodetune wrote it with format version 1: a
// header and one verified entry, records without the fields version 2
// added.
func v1Journal(t *testing.T) []byte {
	t.Helper()
	k := budgetChange.Key
	var b []byte
	for _, r := range []record{
		{Seq: 1, Event: evHeader, Format: journalFormat, Version: 1},
		{Seq: 2, Event: evIntent, Key: &k, Original: &Value{"300", "300"}, To: "600", Rule: budgetChange.Rule, Subject: budgetChange.Subject, Run: "old", NetNS: "net:[7]"},
		{Seq: 3, Event: evApplied, Entry: 2},
		{Seq: 4, Event: evVerified, Entry: 2, Observed: &Value{"600", "600"}},
	} {
		l, err := encodeLine(r)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, l...)
	}
	return b
}

// TestJournalV1IsReadAndMigrated: a journal written by a nodetune of
// journal version 1 is read as it is by a dry run (which writes nothing),
// and a writer rewrites its header to version 2, keeping every other line
// byte for byte, so that an older nodetune refuses it by version instead of
// calling it corrupt.
func TestJournalV1IsReadAndMigrated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, JournalFile)
	v1 := v1Journal(t)
	if err := os.WriteFile(path, v1, 0o600); err != nil {
		t.Fatal(err)
	}
	ro, err := readJournal(dir)
	if err != nil {
		t.Fatalf("reading a version 1 journal: %v", err)
	}
	if open := ro.open(); len(open) != 1 || open[0].Key != budgetChange.Key || open[0].State != evVerified || open[0].Device != nil {
		t.Fatalf("entries of the version 1 journal: %+v", open)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, v1) {
		t.Fatal("a read-only open changed the file")
	}

	j, err := openJournal(dir)
	if err != nil {
		t.Fatalf("opening a version 1 journal: %v", err)
	}
	if open := j.open(); len(open) != 1 || open[0].NetNS != "net:[7]" {
		t.Fatalf("entries after migration: %+v", open)
	}
	if err := j.event(j.open()[0], evRestored, nil, ""); err != nil {
		t.Fatalf("appending after migration: %v", err)
	}
	j.close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	old := bytes.SplitAfter(v1, []byte("\n"))
	hdr, err := decodeLine(bytes.TrimSuffix(lines[0], []byte("\n")))
	if err != nil || hdr.Version != journalVersion || hdr.Seq != 1 {
		t.Errorf("header after migration: %+v, %v", hdr, err)
	}
	if diff := cmp.Diff(old[1:len(old)-1], lines[1:len(old)-1]); diff != "" {
		t.Errorf("migration changed the records (-v1 +now):\n%s", diff)
	}
	st, err := parseJournal(b)
	if err != nil || st.version != journalVersion || len(st.entries) != 1 || st.entries[0].State != evRestored {
		t.Errorf("the migrated journal: %+v, %v", st, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestJournalV1FromAnEarlierNodetune reads a journal that the nodetune
// before journal version 2 wrote (testdata/journal-v1.jsonl, written by its
// own journal code): an open offload entry and a restored sysctl entry.
// A writer migrates it and rollback then handles the open entry by name,
// as that nodetune did.
func TestJournalV1FromAnEarlierNodetune(t *testing.T) {
	v1, err := os.ReadFile("testdata/journal-v1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, JournalFile), v1, 0o600); err != nil {
		t.Fatal(err)
	}
	n := newNode(t)
	tu := openTuner(t, dir, n.host)
	e := tu.Entries()
	if len(e) != 1 || e[0].Key.Target != "vxlan0" || e[0].State != evVerified || e[0].Device != nil || e[0].NetNS != "net:[4026532319]" {
		t.Fatalf("entries of the earlier nodetune's journal: %+v", e)
	}
	st, err := parseJournal(mustRead(t, filepath.Join(dir, JournalFile)))
	if err != nil || st.version != journalVersion || len(st.entries) != 2 {
		t.Fatalf("after opening it for writing: version %d, %d entries, %v", st.version, len(st.entries), err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJournalV2IsMigrated: a version 2 journal (with a hold) is read as
// it is, and a writer rewrites only its header, to the version that added
// measurements, so that a nodetune of version 2 refuses a journal that
// may hold them by its version, not as corrupt.
func TestJournalV2IsMigrated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, JournalFile)
	k := budgetChange.Key
	var v2 []byte
	for _, r := range []record{
		{Seq: 1, Event: evHeader, Format: journalFormat, Version: 2},
		{Seq: 2, Event: evHold, Key: &k, Rule: budgetChange.Rule, Subject: budgetChange.Subject, NetNS: "net:[7]"},
	} {
		l, err := encodeLine(r)
		if err != nil {
			t.Fatal(err)
		}
		v2 = append(v2, l...)
	}
	if err := os.WriteFile(path, v2, 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := openJournal(dir)
	if err != nil {
		t.Fatalf("opening a version 2 journal: %v", err)
	}
	if h := j.st.active(); len(h) != 1 || h[0].To != "" || h[0].Measured != nil {
		t.Errorf("holds of the version 2 journal: %+v", h)
	}
	j.close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines, old := bytes.SplitAfter(b, []byte("\n")), bytes.SplitAfter(v2, []byte("\n"))
	if hdr, err := decodeLine(bytes.TrimSuffix(lines[0], []byte("\n"))); err != nil || hdr.Version != 3 {
		t.Errorf("header after migration: %+v, %v", hdr, err)
	}
	if diff := cmp.Diff(old[1:], lines[1:]); diff != "" {
		t.Errorf("migration changed the records (-v2 +now):\n%s", diff)
	}
}
