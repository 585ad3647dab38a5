package kube

import (
	"errors"
	"fmt"
	"testing"
)

func TestDecodeStatus(t *testing.T) {
	for _, tc := range []struct {
		code int
		body string
		is   error
		not  error
		msg  string
	}{
		{404, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"nodes \"n\" not found","reason":"NotFound","details":{"name":"n","kind":"nodes"},"code":404}`,
			ErrNotFound, ErrConflict, `nodes "n" not found (NotFound, HTTP 404)`},
		{409, `{"kind":"Status","status":"Failure","message":"the object has been modified","reason":"Conflict","code":409}`,
			ErrConflict, ErrAlreadyExists, "the object has been modified (Conflict, HTTP 409)"},
		{409, `{"kind":"Status","status":"Failure","message":"events \"e\" already exists","reason":"AlreadyExists","code":409}`,
			ErrAlreadyExists, ErrConflict, `events "e" already exists (AlreadyExists, HTTP 409)`},
		{403, `{"kind":"Status","status":"Failure","message":"nodes is forbidden","reason":"Forbidden","code":403}`,
			ErrForbidden, ErrUnauthorized, "nodes is forbidden (Forbidden, HTTP 403)"},
		{422, `{"kind":"Status","status":"Failure","message":"Event.events.k8s.io \"x\" is invalid","reason":"Invalid","code":422}`,
			ErrInvalid, ErrNotFound, `Event.events.k8s.io "x" is invalid (Invalid, HTTP 422)`},
		{410, `{"kind":"Status","status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}`,
			ErrGone, ErrNotFound, "too old resource version: 1 (5) (Expired, HTTP 410)"},
		// Not a Status (a proxy's page): the HTTP code decides.
		{401, `Unauthorized`, ErrUnauthorized, ErrForbidden, `Unauthorized: "Unauthorized" (HTTP 401)`},
		{503, ``, nil, ErrNotFound, "Service Unavailable (HTTP 503)"},
		// A Status with an unknown reason: the code decides.
		{429, `{"kind":"Status","reason":"SomethingNew","message":"slow down","code":429}`, ErrTooManyRequests, ErrConflict, "slow down (SomethingNew, HTTP 429)"},
	} {
		err := fmt.Errorf("wrapped: %w", decodeStatus(tc.code, []byte(tc.body)))
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%d %s: not %v", tc.code, tc.body, tc.is)
		}
		if errors.Is(err, tc.not) {
			t.Errorf("%d %s: is %v", tc.code, tc.body, tc.not)
		}
		var se *StatusError
		if !errors.As(err, &se) || se.Error() != tc.msg {
			t.Errorf("%d %s: says %q, want %q", tc.code, tc.body, se, tc.msg)
		}
	}
	if !IsNotFound(decodeStatus(404, nil)) || IsNotFound(errors.New("x")) || !IsGone(decodeStatus(410, nil)) ||
		!IsForbidden(decodeStatus(403, nil)) || !IsInvalid(decodeStatus(422, nil)) || !IsConflict(decodeStatus(409, nil)) {
		t.Error("the Is helpers do not follow the codes")
	}
}
