package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// The few metav1 (k8s.io/apimachinery/pkg/apis/meta/v1) types nodetune's
// objects carry, declared here with the API's JSON forms so that the
// binary links no apimachinery.

// TypeMeta is an object's kind and API version.
type TypeMeta struct {
	Kind       string `json:"kind,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// ObjectMeta is the metadata of an object, with the fields nodetune uses.
type ObjectMeta struct {
	Name            string            `json:"name,omitempty"`
	Namespace       string            `json:"namespace,omitempty"`
	UID             string            `json:"uid,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
}

// ListMeta is the metadata of a list: the resourceVersion to watch from.
type ListMeta struct {
	ResourceVersion string `json:"resourceVersion,omitempty"`
	Continue        string `json:"continue,omitempty"`
}

// NamespaceDefault is the namespace nodetune's events go to.
const NamespaceDefault = "default"

// Time is a metav1.Time: RFC 3339 with whole seconds, null when zero.
type Time struct{ time.Time }

// MicroTime is a metav1.MicroTime: RFC 3339 with microseconds, null when
// zero.
type MicroTime struct{ time.Time }

const microLayout = "2006-01-02T15:04:05.000000Z07:00"

// NewTime returns t as a Time, truncated to what the API keeps.
func NewTime(t time.Time) Time { return Time{t.Truncate(time.Second)} }

// NewMicroTime returns t as a MicroTime, truncated to what the API keeps.
func NewMicroTime(t time.Time) MicroTime { return MicroTime{t.Truncate(time.Microsecond)} }

// MarshalJSON writes the time as the API does.
func (t Time) MarshalJSON() ([]byte, error) { return marshalTime(t.Time, time.RFC3339) }

// UnmarshalJSON reads an RFC 3339 time or null.
func (t *Time) UnmarshalJSON(b []byte) error { return unmarshalTime(b, &t.Time) }

// MarshalJSON writes the time as the API does.
func (t MicroTime) MarshalJSON() ([]byte, error) { return marshalTime(t.Time, microLayout) }

// UnmarshalJSON reads an RFC 3339 time or null.
func (t *MicroTime) UnmarshalJSON(b []byte) error { return unmarshalTime(b, &t.Time) }

func marshalTime(t time.Time, layout string) ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(layout))
}

func unmarshalTime(b []byte, t *time.Time) error {
	if bytes.Equal(b, []byte("null")) {
		*t = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decoding a time: %w", err)
	}
	if s == "" {
		*t = time.Time{}
		return nil
	}
	p, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("decoding a time: %w", err)
	}
	*t = p.Local()
	return nil
}
