package tune

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// DefaultKeepClosed is how many closed entries compaction keeps, newest
// first, as the journal's recent history.
const DefaultKeepClosed = 200

// The journal is compacted once it holds twice as many closed entries as
// it keeps, so that a rewrite happens once per KeepClosed closed entries,
// not after every change.
const compactFactor = 2

// compacted is what a compaction kept and dropped.
type compacted struct {
	keptEntries, droppedEntries, droppedLines int
}

// maybeCompact compacts the journal when it holds more than compactFactor
// times keep closed entries. It runs under the journal's lock, from the
// Tuner's own runs (Apply, Rollback, Reconcile), and never fails one: a
// journal that cannot be compacted stays as it is, complete, and is
// compacted at a later run.
func (t *Tuner) maybeCompact() {
	if t.j.readOnly || t.j.usable() != nil || t.keepClosed <= 0 {
		return
	}
	closed := 0
	for _, e := range t.j.st.entries {
		if !e.Open() {
			closed++
		}
	}
	if closed <= compactFactor*t.keepClosed {
		return
	}
	c, err := t.j.compact(t.keepClosed)
	if err != nil {
		t.log.Error("compacting the journal failed; it stays as it is", "err", err)
		return
	}
	t.log.Info("compacted the journal", "kept_entries", c.keptEntries, "dropped_entries", c.droppedEntries, "dropped_lines", c.droppedLines)
}

// compact rewrites the journal with its header, every record of every open
// entry, the holds in force (holds.go), and the records of the newest keep
// closed entries; closed entries older than those, and the markers of torn
// lines with the lines themselves, are dropped. Sequence numbers are kept,
// so entry IDs stay what they were. The rewrite is atomic (rewrite.go).
func (j *journal) compact(keep int) (compacted, error) {
	var c compacted
	data, err := os.ReadFile(j.path)
	if err != nil {
		return c, classify("reading the journal "+j.path, err)
	}
	data = data[:min(int64(len(data)), j.size)]
	keepIDs := map[int64]bool{}
	closed := 0
	for i := len(j.st.entries) - 1; i >= 0; i-- {
		e := j.st.entries[i]
		switch {
		case e.Open():
			keepIDs[e.ID] = true
		case closed < keep:
			keepIDs[e.ID] = true
			closed++
		}
	}
	c.keptEntries = len(keepIDs)
	c.droppedEntries = len(j.st.entries) - len(keepIDs)
	var out bytes.Buffer
	lines := bytes.SplitAfter(data, []byte("\n"))
	for n, l := range lines {
		if len(l) == 0 {
			continue
		}
		r, err := decodeLine(bytes.TrimSuffix(l, []byte("\n")))
		if n == 0 {
			if err != nil {
				return c, fmt.Errorf("compacting the journal %s: its header: %w", j.path, err)
			}
			out.Write(l)
			continue
		}
		var keepLine bool
		switch {
		case err != nil: // a torn line, acknowledged (the journal parsed)
		case r.Event == evTorn:
		case r.Event == evIntent:
			keepLine = keepIDs[r.Seq]
		case r.Event == evHold:
			keepLine = slices.ContainsFunc(j.st.holds, func(h *Hold) bool { return h.ID == r.Seq && !h.Released })
		case r.Event == evRelease: // its hold is released, and dropped
		default:
			keepLine = keepIDs[r.Entry]
		}
		if keepLine {
			out.Write(l)
		} else {
			c.droppedLines++
		}
	}
	if c.droppedLines == 0 {
		return c, nil
	}
	return c, j.rewrite(out.Bytes(), "compacting")
}

// removeStale removes the temporary files of a rewrite that a killed
// process left beside the journal in dir. It runs under the journal's
// lock, so no rewrite is under way.
func removeStale(dir string) {
	stale, _ := filepath.Glob(filepath.Join(dir, "."+JournalFile+".*"))
	for _, f := range stale {
		os.Remove(f)
	}
}
