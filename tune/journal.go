package tune

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/nodetune/nodetune/internal/shell"
)

// JournalFile is the journal's file name inside the state directory.
const JournalFile = "journal.jsonl"

// The journal's header names its format and version; a file whose first
// line does not is refused. Version 2 added the device identity and the
// lossless target of an intent, the gone event, and holds; version 3 the
// measurement of a change undone because it measured slower, and holds
// on one value ("to"). An older journal is read as it is, and rewritten
// with the current header the first time a writer opens it (rewrite.go),
// so that a nodetune that reads only an older version refuses it by its
// version rather than as corrupt.
const (
	journalFormat  = "nodetune-journal"
	journalVersion = 3
)

// ErrJournal marks a journal nodetune refuses to use: corrupt, foreign,
// from a newer nodetune, or held by another nodetune process. Such a file
// is left exactly as it is, and nothing is written to the host.
var ErrJournal = errors.New("journal unusable")

// ErrJournalWrite marks a journal that could not be written: a record
// failed to reach the disk. The journal then takes no more records, and
// tune writes nothing more to the host, for the rest of the process.
var ErrJournalWrite = errors.New("journal not writable")

// Journal events. An entry starts with an intent and is open until one of
// the closing events.
const (
	evHeader   = "header"
	evIntent   = "intent"   // the original value, before the first write
	evApplied  = "applied"  // the write returned
	evVerified = "verified" // read back at the new value
	evFailed   = "failed"   // the write failed and the value is unchanged (closes)
	evReverted = "reverted" // the kernel did not take it; original back (closes)
	evRestored = "restored" // rollback wrote the original back (closes)
	evClosed   = "closed"   // the value was found at the original (closes)
	evReleased = "released" // someone else changed it; left alone (closes)
	evGone     = "gone"     // its device or network namespace is gone, and the original value with it (closes)
	evTorn     = "torn"     // acknowledges a torn, never-committed last line
)

var closing = []string{evFailed, evReverted, evRestored, evClosed, evReleased, evGone}

// record is one journal event. Which fields are set depends on Event.
type record struct {
	Seq     int64     `json:"seq"`
	At      time.Time `json:"at"`
	Event   string    `json:"event"`
	Format  string    `json:"format,omitempty"`
	Version int       `json:"version,omitempty"`
	Entry   int64     `json:"entry,omitempty"`
	Key     *Key      `json:"key,omitempty"`
	// TargetB64 is Key.Target's bytes in base64 when they are not UTF-8
	// (a device name may be any bytes); Key.Target then holds them escaped,
	// for a person reading the file.
	TargetB64 string `json:"target_b64,omitempty"`
	// Device identifies the device of an intent's setting (version 2).
	Device   *Device `json:"device,omitempty"`
	Original *Value  `json:"original,omitempty"`
	To       string  `json:"to,omitempty"`
	Rule     string  `json:"rule,omitempty"`
	Subject  string  `json:"subject,omitempty"`
	Run      string  `json:"run,omitempty"`
	NetNS    string  `json:"netns,omitempty"`
	Observed *Value  `json:"observed,omitempty"`
	Note     string  `json:"note,omitempty"`
	Line     int     `json:"line,omitempty"`
	// Measured is what measuring a change made to raise throughput found,
	// on the record that undid it and on the hold that keeps it undone.
	Measured *Measured `json:"measured,omitempty"`
}

// line is how a record is stored: the record's JSON and its CRC-32C, so a
// torn or altered line is detected.
type line struct {
	CRC string          `json:"crc"`
	Rec json.RawMessage `json:"rec"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) string { return fmt.Sprintf("%08x", crc32.Checksum(b, castagnoli)) }

// encodeLine renders r as one journal line, newline included.
func encodeLine(r record) ([]byte, error) {
	rec, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(line{CRC: checksum(rec), Rec: rec})
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// decodeLine parses one journal line and checks its checksum.
func decodeLine(b []byte) (record, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return record{}, fmt.Errorf("not a journal line: %w", err)
	}
	if dec.More() {
		return record{}, errors.New("not a journal line: data after the record")
	}
	if l.CRC != checksum(l.Rec) {
		return record{}, fmt.Errorf("checksum mismatch (stored %q, computed %s)", l.CRC, checksum(l.Rec))
	}
	var r record
	dec = json.NewDecoder(bytes.NewReader(l.Rec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return record{}, fmt.Errorf("record: %w", err)
	}
	return r, nil
}

// Entry is one change the journal records: the setting, the value it had
// before nodetune first wrote it, and the value nodetune set.
type Entry struct {
	// ID is the sequence number of the entry's intent record.
	ID       int64  `json:"id"`
	Key      Key    `json:"key"`
	Original Value  `json:"original"`
	To       string `json:"to"`
	Rule     string `json:"rule"`
	Subject  string `json:"subject"`
	Run      string `json:"run"`
	NetNS    string `json:"netns,omitempty"`
	// Device identifies the device of the setting, when it has one and
	// the entry was made by a nodetune that records it (journal version 2).
	Device *Device   `json:"device,omitempty"`
	At     time.Time `json:"at"`
	// State is the entry's last event: intent, applied, verified, or the
	// event that closed it.
	State string `json:"state"`
	// Measured is set when nodetune undid the change because the path it
	// was made to speed up measured slower after it.
	Measured *Measured `json:"measured,omitempty"`
}

// Open reports whether nodetune still claims the setting.
func (e *Entry) Open() bool { return !slices.Contains(closing, e.State) }

// Verified reports whether nodetune wrote e's value and read it back, and
// nothing was recorded since: a value found changed now was changed by
// someone else.
func (e *Entry) Verified() bool { return e.State == evVerified }

// journalState is a journal replayed.
type journalState struct {
	entries []*Entry
	byID    map[int64]*Entry
	lastSeq int64
	lines   int
	// version is the header's journal version.
	version int
	// holds are the settings the user rolled back (holds.go).
	holds []*Hold
	// tornTail is set when the file ends in a line without its newline: a
	// write the process died in, never committed, so never acted on.
	tornTail bool
	// tornHeader is the length of a partial header that is all the file
	// holds: its creator died while writing it, before any host write.
	tornHeader int
}

// maxHeaderLine bounds a header line; a header is about 130 bytes.
const maxHeaderLine = 512

// isTornHeader reports whether b, a file's only content and without a
// newline, can be the start of a header line that nodetune was writing.
func isTornHeader(b []byte) bool {
	const start = `{"crc":"`
	return len(b) > 0 && len(b) < maxHeaderLine && bytes.IndexByte(b, '\n') < 0 &&
		(bytes.HasPrefix([]byte(start), b) || bytes.HasPrefix(b, []byte(start)))
}

// parseJournal replays journal text. It fails on anything it does not
// fully understand; the caller must then leave the file alone.
func parseJournal(data []byte) (*journalState, error) {
	st := &journalState{byID: map[int64]*Entry{}}
	if len(data) == 0 {
		return st, nil
	}
	parts := bytes.Split(data, []byte("\n"))
	last := parts[len(parts)-1]
	parts = parts[:len(parts)-1]
	if len(last) > 0 {
		st.tornTail = true
	}
	recs := make([]record, len(parts))
	errs := make([]error, len(parts))
	for i, p := range parts {
		recs[i], errs[i] = decodeLine(p)
	}
	st.lines = len(parts)
	for i := range parts {
		n := i + 1
		if i > 0 && i+1 < len(parts) && errs[i+1] == nil && recs[i+1].Event == evTorn && recs[i+1].Line == n {
			continue // a torn write, never committed, acknowledged on a later open
		}
		if errs[i] != nil {
			if i == 0 {
				return nil, fmt.Errorf("line 1: %w: this is not a nodetune journal (%v)", ErrJournal, errs[i])
			}
			return nil, fmt.Errorf("line %d: %w: corrupt record: %v", n, ErrJournal, errs[i])
		}
		if err := st.replay(n, recs[i]); err != nil {
			return nil, fmt.Errorf("line %d: %w: %v", n, ErrJournal, err)
		}
	}
	if st.lines == 0 {
		if !isTornHeader(last) {
			return nil, fmt.Errorf("%w: the file holds a partial first line and no header", ErrJournal)
		}
		st.tornTail, st.tornHeader = false, len(last)
	}
	return st, nil
}

// replay applies one record, checking that it follows from the ones before.
func (st *journalState) replay(n int, r record) error {
	if n == 1 {
		switch {
		case r.Event != evHeader || r.Format != journalFormat:
			return errors.New("this is not a nodetune journal: no header")
		case r.Version > journalVersion:
			return fmt.Errorf("written by a newer nodetune (journal version %d; this one reads %d)", r.Version, journalVersion)
		case r.Version < 1:
			return fmt.Errorf("unknown journal version %d", r.Version)
		}
		st.version = r.Version
		st.lastSeq = r.Seq
		return nil
	}
	if r.Seq <= st.lastSeq {
		return fmt.Errorf("sequence %d does not follow %d", r.Seq, st.lastSeq)
	}
	st.lastSeq = r.Seq
	switch r.Event {
	case evHeader:
		return errors.New("a second header")
	case evTorn:
		return nil
	case evIntent:
		if r.Key == nil || r.Original == nil || r.To == "" {
			return errors.New("an intent without key, original value or target")
		}
		k, err := keyOf(r)
		if err != nil {
			return err
		}
		e := &Entry{ID: r.Seq, Key: k, Original: *r.Original, To: r.To, Rule: r.Rule, Subject: r.Subject,
			Run: r.Run, NetNS: r.NetNS, Device: r.Device, At: r.At, State: evIntent}
		st.entries = append(st.entries, e)
		st.byID[e.ID] = e
		return nil
	case evHold, evRelease:
		return st.replayHold(r)
	case evApplied, evVerified, evFailed, evReverted, evRestored, evClosed, evReleased, evGone:
		e := st.byID[r.Entry]
		if e == nil {
			return fmt.Errorf("%s for entry %d, which has no intent", r.Event, r.Entry)
		}
		if !e.Open() {
			return fmt.Errorf("%s for entry %d, which is already %s", r.Event, r.Entry, e.State)
		}
		e.State = r.Event
		if r.Measured != nil {
			e.Measured = r.Measured
		}
		return nil
	}
	return fmt.Errorf("unknown event %q", r.Event)
}

// journal is the open journal file, locked against other nodetune
// processes for as long as it is open.
type journal struct {
	path string
	f    *os.File
	// w is what records are written through: f, or a failing file in tests.
	w   journalFile
	st  *journalState
	now func() time.Time
	// size is the length of the file up to its last complete record.
	size int64
	// failed is the write or sync error after which the journal takes no
	// more records in this process.
	failed error
	// readOnly is set for a journal opened by readJournal: f is nil, and
	// nothing may be recorded.
	readOnly bool
	// crash is the test builds' crash hook (crash.go), or nil.
	crash *crasher
}

// journalFile is the part of the journal's file that appending uses.
type journalFile interface {
	Write(b []byte) (int, error)
	Sync() error
	Truncate(size int64) error
}

// openJournal opens (creating if needed) the journal in dir, takes its
// lock and replays it.
func openJournal(dir string) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, classify("creating the state directory "+dir, err)
	}
	path := filepath.Join(dir, JournalFile)
	for attempt := 0; ; attempt++ {
		created := true
		f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			created = false
			f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
		}
		if err != nil {
			return nil, classify("opening the journal "+path, err)
		}
		j := &journal{path: path, f: f, w: f, now: time.Now, crash: crasherFromEnv()}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("journal %s: %w: another nodetune process holds it (a running `nodetune serve`, or a fix or rollback in progress)", path, ErrJournal)
			}
			return nil, classify("locking the journal "+path, err)
		}
		// Another writer may have rewritten the journal (rewrite.go) between
		// the open and the lock: then this lock is on a file that is no
		// longer the journal, so open it again.
		if same, err := sameFile(f, path); err != nil || !same {
			f.Close()
			if err != nil {
				return nil, classify("checking the journal "+path, err)
			}
			if attempt < 3 {
				continue
			}
			return nil, fmt.Errorf("journal %s: %w: it keeps being replaced while this process opens it", path, ErrJournal)
		}
		if err := j.load(dir, created); err != nil {
			j.close()
			return nil, err
		}
		removeStale(dir)
		return j, nil
	}
}

// readJournal opens the journal in dir for reading only, as a dry run
// does: it takes no lock, so it works while another nodetune holds the
// journal, and it writes nothing, not even the repairs a writer makes. A
// journal that does not exist reads as empty.
func readJournal(dir string) (*journal, error) {
	path := filepath.Join(dir, JournalFile)
	j := &journal{path: path, now: time.Now, readOnly: true, st: &journalState{byID: map[int64]*Entry{}}}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return nil, classify("opening the journal "+path, err)
	}
	defer f.Close()
	if _, err := j.read(f); err != nil {
		return nil, err
	}
	return j, nil
}

// read reads and replays the journal from f, and returns its bytes.
func (j *journal) read(f *os.File) ([]byte, error) {
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
	if err != nil {
		return nil, classify("reading the journal "+j.path, err)
	}
	st, err := parseJournal(data)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w (the file is left as it is; nodetune writes nothing to the host until it is repaired or moved aside)", j.path, err)
	}
	j.st, j.size = st, int64(len(data))
	return data, nil
}

// load replays the journal and repairs what a process that died left: a
// missing or torn header, or a torn last line.
func (j *journal) load(dir string, created bool) error {
	data, err := j.read(j.f)
	if err != nil {
		return err
	}
	st := j.st
	if st.tornHeader > 0 {
		// Its creator died while writing the header, so nothing else was
		// ever written: start the file again.
		if err := j.f.Truncate(0); err != nil {
			return classify("discarding the partial header of the journal "+j.path, err)
		}
		j.size = 0
	}
	if len(data) == 0 || st.tornHeader > 0 {
		// A new journal, or one whose creator died before its header.
		if err := j.append(record{Event: evHeader, Format: journalFormat, Version: journalVersion}, nil); err != nil {
			return err
		}
		created = true
	}
	if st.tornHeader > 0 {
		note := fmt.Sprintf("discarded a partial header (%d bytes) left by a process that died while creating the journal", st.tornHeader)
		if err := j.append(record{Event: evTorn, Note: note}, nil); err != nil {
			return err
		}
	}
	if created {
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	if st.tornTail {
		// Close the torn line and acknowledge it, so it reads as a line
		// that was never committed rather than as corruption.
		torn := st.lines + 1
		st.lines++
		st.tornTail = false
		if err := j.append(record{Event: evTorn, Line: torn}, []byte("\n")); err != nil {
			return err
		}
	}
	if st.version != 0 && st.version < journalVersion {
		data, err := os.ReadFile(j.path)
		if err != nil {
			return classify("reading the journal "+j.path, err)
		}
		if err := j.migrate(data); err != nil {
			return fmt.Errorf("journal %s: migrating it from version %d to %d: %w (the file is left as it is)", j.path, st.version, journalVersion, err)
		}
	}
	return nil
}

// append writes r durably: it returns only once the record is on disk.
// After a write or sync fails, the file is cut back to its last complete
// record and the journal takes no more records in this process: a half
// line or a record whose fsync failed must never be followed by another.
func (j *journal) append(r record, prefix []byte) error {
	if err := j.usable(); err != nil {
		return err
	}
	r.Seq = j.st.lastSeq + 1
	r.At = j.now().UTC()
	b, err := encodeLine(r)
	if err != nil {
		return fmt.Errorf("encoding a journal record: %w", err)
	}
	b = append(prefix, b...)
	if _, err := j.w.Write(b); err != nil {
		return j.fail("writing the journal "+j.path, err)
	}
	if err := j.w.Sync(); err != nil {
		return j.fail("syncing the journal "+j.path, err)
	}
	if err := j.st.replay(j.st.lines+1, r); err != nil {
		return j.fail("replaying the journal "+j.path, err)
	}
	j.st.lines++
	j.size += int64(len(b))
	return nil
}

// usable says why the journal takes no more records, or nil.
func (j *journal) usable() error {
	if j.readOnly {
		return fmt.Errorf("journal %s: %w: opened read-only, for a dry run", j.path, ErrJournalWrite)
	}
	if j.failed != nil {
		return fmt.Errorf("journal %s: %w: an earlier write failed in this process (%v); nodetune writes nothing more to it or to the host until it is restarted", j.path, ErrJournalWrite, j.failed)
	}
	return nil
}

// fail marks the journal failed after err, and cuts the file back to its
// last complete record, so that the next process can read it.
func (j *journal) fail(what string, err error) error {
	err = classify(what, err)
	j.failed = err
	terr := j.w.Truncate(j.size)
	if terr == nil {
		terr = j.w.Sync()
	}
	if terr != nil {
		return fmt.Errorf("%w: %w; cutting it back to its last complete record also failed (%v), so the next nodetune may refuse it", ErrJournalWrite, err, terr)
	}
	return fmt.Errorf("%w: %w (cut back to its last complete record)", ErrJournalWrite, err)
}

// intent records c's original value before its first write, and returns
// the new entry.
func (j *journal) intent(c Change, orig Value, run, netns string, dev *Device) (*Entry, error) {
	k := c.Key
	r := record{Event: evIntent, Key: &k, Original: &orig, To: c.To, Rule: c.Rule, Subject: c.Subject, Run: run, NetNS: netns, Device: dev}
	setTarget(&r, &k)
	err := j.append(r, nil)
	if err != nil {
		return nil, err
	}
	return j.st.entries[len(j.st.entries)-1], nil
}

// setTarget stores k, which r.Key points to, losslessly: a target that is
// not UTF-8 goes in r.TargetB64, and k.Target holds it escaped, for a
// person reading the file (JSON would store U+FFFD).
func setTarget(r *record, k *Key) {
	if !utf8.ValidString(k.Target) {
		r.TargetB64 = base64.StdEncoding.EncodeToString([]byte(k.Target))
		k.Target = shell.Escape(k.Target)
	}
}

// keyOf is the key of record r, its target read back from TargetB64 when
// it has one.
func keyOf(r record) (Key, error) {
	k := *r.Key
	if r.TargetB64 != "" {
		b, err := base64.StdEncoding.DecodeString(r.TargetB64)
		if err != nil {
			return Key{}, fmt.Errorf("a %s whose target_b64 is not base64: %v", r.Event, err)
		}
		k.Target = string(b)
	}
	return k, nil
}

// event records a later event of entry e.
func (j *journal) event(e *Entry, ev string, observed *Value, note string) error {
	return j.measuredEvent(e, ev, observed, note, nil)
}

// measuredEvent records a later event of entry e, with the measurement
// that led to it, if any.
func (j *journal) measuredEvent(e *Entry, ev string, observed *Value, note string, m *Measured) error {
	return j.append(record{Event: ev, Entry: e.ID, Observed: observed, Note: note, Measured: m}, nil)
}

// open returns the entries nodetune still claims, newest first.
func (j *journal) open() []*Entry {
	var out []*Entry
	for i := len(j.st.entries) - 1; i >= 0; i-- {
		if e := j.st.entries[i]; e.Open() {
			out = append(out, e)
		}
	}
	return out
}

func (j *journal) close() error {
	if j.f == nil {
		return nil
	}
	return j.f.Close()
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return classify("opening the state directory "+dir, err)
	}
	defer d.Close()
	return classify("syncing the state directory "+dir, d.Sync())
}
