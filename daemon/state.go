package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nodetune/nodetune/rules"
)

// BackoffFile is the name of the back-off state file in serve's state
// directory, beside tune's journal.
const BackoffFile = "backoff.json"

// The back-off file names its format and version; another is refused.
const (
	backoffFormat  = "nodetune-backoff"
	backoffVersion = 1
)

// backoffState is the back-off as stored: enough that a restarted or
// upgraded agent neither forgets a setting it gave up on nor starts
// counting reverts afresh.
type backoffState struct {
	Format  string          `json:"format"`
	Version int             `json:"version"`
	Counted []countedEntry  `json:"counted,omitempty"`
	Reverts []revertRecord  `json:"reverts,omitempty"`
	Given   []givenUpRecord `json:"given,omitempty"`
	// Failing are the fixes whose tries failed; a file without it (from
	// an older nodetune) has none.
	Failing []failingRecord `json:"failing,omitempty"`
}

// failingRecord is a fix whose tries failed, Count times in a row.
type failingRecord struct {
	Rule    string    `json:"rule"`
	Subject string    `json:"subject"`
	Count   int       `json:"count"`
	Last    time.Time `json:"last"`
}

// countedEntry is the newest journal entry of a setting whose undoing was
// counted.
// Its setting is spelled as in the journal (rules.SettingKey's fields).
type countedEntry struct {
	rules.SettingKey
	Entry int64 `json:"entry"`
}

// revertRecord is when a finding's fix was undone, within the window.
type revertRecord struct {
	Rule    string      `json:"rule"`
	Subject string      `json:"subject"`
	At      []time.Time `json:"at"`
}

// givenUpRecord is a setting nodetune stopped managing.
type givenUpRecord struct {
	Rule     string    `json:"rule"`
	Subject  string    `json:"subject"`
	Reverts  int       `json:"reverts"`
	LastSeen time.Time `json:"last_seen"`
}

// marshal renders c as the back-off file's content.
func (c *conflicts) marshal() ([]byte, error) {
	st := backoffState{Format: backoffFormat, Version: backoffVersion}
	for s, id := range c.counted {
		st.Counted = append(st.Counted, countedEntry{SettingKey: s, Entry: id})
	}
	for k, ts := range c.reverts {
		st.Reverts = append(st.Reverts, revertRecord{Rule: k.rule, Subject: k.subject, At: ts})
	}
	for k, g := range c.given {
		st.Given = append(st.Given, givenUpRecord{Rule: k.rule, Subject: k.subject, Reverts: g.conflict.Reverts, LastSeen: g.lastSeen})
	}
	for k, f := range c.failing {
		st.Failing = append(st.Failing, failingRecord{Rule: k.rule, Subject: k.subject, Count: f.Count, Last: f.Last})
	}
	return json.MarshalIndent(st, "", "  ")
}

// unmarshal replaces c's counts with those stored in data.
func (c *conflicts) unmarshal(data []byte) error {
	var st backoffState
	if err := json.Unmarshal(data, &st); err != nil {
		return err
	}
	if st.Format != backoffFormat || st.Version != backoffVersion {
		return fmt.Errorf("format %q version %d; this nodetune reads %q version %d", st.Format, st.Version, backoffFormat, backoffVersion)
	}
	fresh := newConflicts(c.policy)
	for _, e := range st.Counted {
		fresh.counted[e.SettingKey] = e.Entry
	}
	for _, r := range st.Reverts {
		fresh.reverts[key{r.Rule, r.Subject}] = r.At
	}
	for _, g := range st.Given {
		k := key{g.Rule, g.Subject}
		fresh.given[k] = &given{lastSeen: g.LastSeen, conflict: conflictOf(k, g.Reverts, c.policy.Window)}
	}
	for _, f := range st.Failing {
		fresh.failing[key{f.Rule, f.Subject}] = &failing{Count: f.Count, Last: f.Last}
	}
	*c = *fresh
	return nil
}

// load reads the back-off state from path; a missing file is a fresh start.
func (c *conflicts) load(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the back-off state %s: %w", path, err)
	}
	if err := c.unmarshal(data); err != nil {
		return fmt.Errorf("reading the back-off state %s: %w", path, err)
	}
	return nil
}

// save writes the back-off state to path atomically: a crash leaves either
// the old file or the new one, never a torn one.
func (c *conflicts) save(path string) error {
	data, err := c.marshal()
	if err != nil {
		return fmt.Errorf("encoding the back-off state: %w", err)
	}
	if err := writeFileAtomic(path, data); err != nil {
		return fmt.Errorf("writing the back-off state %s: %w", path, err)
	}
	c.dirty = false
	return nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it,
// renames it over path and syncs the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// conflictOf is the conflict of a setting given up on before a restart,
// until its finding is seen again and fills in the rest.
func conflictOf(k key, reverts int, window time.Duration) rules.Conflict {
	return rules.Conflict{Finding: rules.Finding{Rule: k.rule, Subject: k.subject}, Reverts: reverts, Window: window}
}
