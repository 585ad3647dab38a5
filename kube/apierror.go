package kube

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Sentinels for the API server's answers that callers act on, matched
// with errors.Is against a *StatusError.
var (
	ErrNotFound        = errors.New("not found")
	ErrAlreadyExists   = errors.New("already exists")
	ErrConflict        = errors.New("conflict")
	ErrForbidden       = errors.New("forbidden")
	ErrUnauthorized    = errors.New("unauthorized")
	ErrInvalid         = errors.New("invalid")
	ErrGone            = errors.New("gone: resource version too old")
	ErrTooManyRequests = errors.New("too many requests")
	ErrServerTimeout   = errors.New("server timeout")
)

// status is a metav1.Status, the body of the API server's errors (and of
// a watch's ERROR events).
type status struct {
	Kind    string `json:"kind"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Code    int    `json:"code"`
}

// StatusError is an error answer from the API server: its HTTP code, and
// the reason and message of its metav1.Status when it sent one.
type StatusError struct {
	Code    int
	Reason  string
	Message string
}

// Error says what the server said.
func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	if e.Reason != "" {
		return fmt.Sprintf("%s (%s, HTTP %d)", msg, e.Reason, e.Code)
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Code)
}

// reasons maps a metav1.Status reason to its sentinel.
var reasons = map[string]error{
	"NotFound":        ErrNotFound,
	"AlreadyExists":   ErrAlreadyExists,
	"Conflict":        ErrConflict,
	"Forbidden":       ErrForbidden,
	"Unauthorized":    ErrUnauthorized,
	"Invalid":         ErrInvalid,
	"Gone":            ErrGone,
	"Expired":         ErrGone,
	"TooManyRequests": ErrTooManyRequests,
	"Timeout":         ErrServerTimeout,
	"ServerTimeout":   ErrServerTimeout,
}

// codes maps an HTTP code to its sentinel when the reason names none.
var codes = map[int]error{
	http.StatusNotFound:            ErrNotFound,
	http.StatusConflict:            ErrConflict,
	http.StatusForbidden:           ErrForbidden,
	http.StatusUnauthorized:        ErrUnauthorized,
	http.StatusUnprocessableEntity: ErrInvalid,
	http.StatusGone:                ErrGone,
	http.StatusTooManyRequests:     ErrTooManyRequests,
	http.StatusGatewayTimeout:      ErrServerTimeout,
}

// Is matches the sentinel of the error's reason, else of its code. A 409
// with reason AlreadyExists is ErrAlreadyExists, not ErrConflict, as in
// the API's own helpers.
func (e *StatusError) Is(target error) bool {
	if s, ok := reasons[e.Reason]; ok {
		return s == target
	}
	return codes[e.Code] == target
}

// decodeStatus turns an error response (code and body) into a
// *StatusError, from the body's metav1.Status when it is one.
func decodeStatus(code int, body []byte) *StatusError {
	e := &StatusError{Code: code}
	var s status
	if json.Unmarshal(body, &s) == nil && s.Kind == "Status" {
		e.Reason, e.Message = s.Reason, s.Message
		if s.Code != 0 {
			e.Code = s.Code
		}
		return e
	}
	if len(body) > 0 {
		const max = 256
		if len(body) > max {
			body = body[:max]
		}
		e.Message = fmt.Sprintf("%s: %q", http.StatusText(code), body)
	}
	return e
}

// IsNotFound reports whether err is the API server's NotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict reports whether err is the API server's Conflict (a stale
// resourceVersion).
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsForbidden reports whether err is the API server's Forbidden.
func IsForbidden(err error) bool { return errors.Is(err, ErrForbidden) }

// IsInvalid reports whether err is the API server's Invalid.
func IsInvalid(err error) bool { return errors.Is(err, ErrInvalid) }

// IsAlreadyExists reports whether err is the API server's AlreadyExists.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsGone reports whether err is the API server's Gone or Expired: the
// resourceVersion asked for is too old.
func IsGone(err error) bool { return errors.Is(err, ErrGone) }
