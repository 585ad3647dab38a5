package detect

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// ErrNotSupported marks a fact that this host cannot provide: an optional
// file is missing, or the kernel answered EOPNOTSUPP.
var ErrNotSupported = errors.New("not supported")

// ErrPermission marks a fact that could not be read for lack of privilege.
var ErrPermission = errors.New("permission denied")

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

// Classify wraps err with what was being done, adding ErrNotSupported when
// err means this host lacks the thing (a missing file or device, an
// operation or protocol the kernel does not support, a read-only file
// system) and ErrPermission when it means missing privilege.
func Classify(what string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENODEV),
		errors.Is(err, syscall.EPROTONOSUPPORT), errors.Is(err, syscall.EAFNOSUPPORT), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%s: %w: %w", what, ErrNotSupported, err)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s: %w: %w", what, ErrPermission, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
