package tune

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A journal is rewritten whole in two cases: a version 1 journal opened by
// a writer gets a version 2 header (migration), and a journal with many
// closed entries is compacted (compact.go). Both write the new file beside
// the old one, lock it, sync it, rename it over the journal and sync the
// directory, so a process killed at any point leaves either the old file or
// the new one, each complete, under the journal's name. The new file is
// locked before it becomes visible, and openJournal checks after locking
// that the file it locked is still the one the name points at.

// rewrite replaces the journal's content with data, which must parse.
func (j *journal) rewrite(data []byte, what string) error {
	st, err := parseJournal(data)
	if err != nil {
		return fmt.Errorf("%s the journal %s: the new content does not parse: %w", what, j.path, err)
	}
	dir := filepath.Dir(j.path)
	f, err := os.CreateTemp(dir, "."+JournalFile+".*")
	if err != nil {
		return classify(what+" the journal "+j.path, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return classify("locking the new journal "+f.Name(), err)
	}
	if err := f.Chmod(0o600); err != nil {
		return classify(what+" the journal "+j.path, err)
	}
	if _, err := f.Write(data); err != nil {
		return classify(what+" the journal "+j.path, err)
	}
	if err := f.Sync(); err != nil {
		return classify(what+" the journal "+j.path, err)
	}
	j.crash.at("rewrite")
	if err := os.Rename(f.Name(), j.path); err != nil {
		return classify(what+" the journal "+j.path, err)
	}
	ok = true
	j.crash.at("renamed")
	if err := syncDir(dir); err != nil {
		// The new file is in place, but its name may not be durable yet:
		// go on with it, and say so.
		err = fmt.Errorf("%s the journal %s: %w", what, j.path, err)
		j.swap(f, st, data)
		return err
	}
	j.swap(f, st, data)
	return nil
}

// swap makes f, whose content is data, the journal's file.
func (j *journal) swap(f *os.File, st *journalState, data []byte) {
	if j.f != nil {
		j.f.Close()
	}
	if _, err := f.Seek(0, 2); err != nil {
		j.failed = err
	}
	j.f, j.w, j.st, j.size = f, f, st, int64(len(data))
}

// migrate rewrites a journal of an older version with the current header;
// every other line stays as it is: each version only added fields and
// events.
func (j *journal) migrate(data []byte) error {
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 {
		return errors.New("a journal without a complete header")
	}
	hdr, err := decodeLine(data[:nl])
	if err != nil {
		return err
	}
	hdr.Version = journalVersion
	line, err := encodeLine(hdr)
	if err != nil {
		return err
	}
	return j.rewrite(append(line, data[nl+1:]...), "migrating")
}

// sameFile reports whether f is still the file at path: a writer that
// rewrote the journal may have renamed a new file over it between this
// process opening the name and locking what it opened.
func sameFile(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}
