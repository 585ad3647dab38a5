package detect

import (
	"encoding/json"
	"errors"
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
