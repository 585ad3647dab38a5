package detect

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// ErrNotSupported marks a fact or change that this host cannot provide:
// the kernel answered EOPNOTSUPP (or lacks the protocol or address
// family), or an optional feature is absent.
var ErrNotSupported = errors.New("not supported")

// ErrGone marks a file, device or namespace that does not exist (ENOENT,
// ENODEV, ENXIO): a missing optional file, or a device that went away
// between being listed and being read or written. It is not "not
// supported": the same host may have it a moment later.
var ErrGone = errors.New("does not exist")

// ErrReadOnly marks a write refused because the file system is mounted
// read-only (EROFS), as /proc/sys and /sys are in a container without
// writable mounts. The host supports the change; this mount does not allow it.
var ErrReadOnly = errors.New("read-only file system")

// ErrPermission marks a fact that could not be read for lack of privilege.
var ErrPermission = errors.New("permission denied")

// ErrTooShort marks a rate that a window too short could not measure.
var ErrTooShort = errors.New("window too short to measure")

// Unavailable reports whether err means the thing is not there to read or
// change on this host, for whatever reason it lacks it: not supported, or
// absent. Probes use it where either means "skip"; messages keep the
// precise reason.
func Unavailable(err error) bool {
	return errors.Is(err, ErrNotSupported) || errors.Is(err, ErrGone)
}

// Err records why a fact could not be read. The zero value means the fact
// was read; rules must check Failed before trusting the fact.
type Err struct{ err error }

// Fail wraps err as the reason a fact is unknown. Fail(nil) is the zero Err.
func Fail(err error) Err { return Err{err: err} }

// Failed reports whether the fact could not be read.
func (e Err) Failed() bool { return e.err != nil }

// Error returns the reason, or "" when the fact was read.
func (e Err) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

// Unwrap exposes the cause to errors.Is and errors.As.
func (e Err) Unwrap() error { return e.err }

// IsZero lets `omitzero` drop an Err that records nothing.
func (e Err) IsZero() bool { return e.err == nil }

// MarshalJSON writes the reason as a string, or null.
func (e Err) MarshalJSON() ([]byte, error) {
	if e.err == nil {
		return []byte("null"), nil
	}
	return json.Marshal(e.err.Error())
}

// UnmarshalJSON reads a reason written by MarshalJSON.
func (e *Err) UnmarshalJSON(b []byte) error {
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == nil || *s == "" {
		e.err = nil
		return nil
	}
	e.err = errors.New(*s)
	return nil
}

// Classify wraps err with what was being done and the sentinel that says
// what kind of failure it is: ErrGone for a missing file or device,
// ErrReadOnly for a read-only file system, ErrNotSupported for an
// operation, protocol or address family the kernel does not support, and
// ErrPermission for missing privilege. Anything else is only wrapped.
func Classify(what string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENODEV), errors.Is(err, syscall.ENXIO):
		return fmt.Errorf("%s: %w: %w", what, ErrGone, err)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%s: %w: %w", what, ErrReadOnly, err)
	case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EPROTONOSUPPORT), errors.Is(err, syscall.EAFNOSUPPORT):
		return fmt.Errorf("%s: %w: %w", what, ErrNotSupported, err)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s: %w: %w", what, ErrPermission, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
