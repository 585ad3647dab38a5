package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Lease is one coordination.k8s.io/v1 Lease held the way client-go's
// leaderelection holds its lock (tools/leaderelection, LeaseLock), without
// linking client-go:
//   - a holder that is not this one keeps the Lease while the record this
//     contender last saw has not changed for leaseDurationSeconds, timed on
//     this contender's own clock from when it saw the record change (never
//     on the holder's renewTime, so clock skew between nodes does not
//     matter);
//   - taking a free or expired Lease sets holderIdentity, acquireTime and
//     renewTime to now and counts a transition; renewing keeps acquireTime
//     and the count;
//   - every write is an update of the object as last read, so the API
//     server's resourceVersion check lets only one of two contenders win;
//   - release empties holderIdentity (so the next contender takes it at
//     once) and keeps the transition count.
//
// A Lease is safe for concurrent use.
type Lease struct {
	c         *Client
	namespace string
	name      string
	identity  string
	duration  time.Duration
	now       func() time.Time

	mu sync.Mutex
	// cached is the object as last read or written, the base of the next
	// update and of its resourceVersion.
	cached *lease
	// observed is the record as last seen, and observedAt when this
	// contender saw it change.
	observed   leaseSpec
	observedAt time.Time
}

// lease is a coordination.k8s.io/v1 Lease.
type lease struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       leaseSpec `json:"spec"`
}

// leaseSpec is a LeaseSpec with the fields leader election uses.
type leaseSpec struct {
	HolderIdentity       *string    `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds *int32     `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          *MicroTime `json:"acquireTime,omitempty"`
	RenewTime            *MicroTime `json:"renewTime,omitempty"`
	LeaseTransitions     *int32     `json:"leaseTransitions,omitempty"`
}

func (s leaseSpec) holder() string {
	if s.HolderIdentity == nil {
		return ""
	}
	return *s.HolderIdentity
}

func (s leaseSpec) transitions() int32 {
	if s.LeaseTransitions == nil {
		return 0
	}
	return *s.LeaseTransitions
}

// equal reports whether a and b are the same record, as leaderelection's
// DeepEqual of the records it observes.
func (s leaseSpec) equal(o leaseSpec) bool {
	a, errA := json.Marshal(s)
	b, errB := json.Marshal(o)
	return errA == nil && errB == nil && bytes.Equal(a, b)
}

// NewLease returns the Lease namespace/name as contender identity would
// hold it, for duration at a time (whole seconds, at least one).
func NewLease(c *Client, namespace, name, identity string, duration time.Duration) (*Lease, error) {
	switch {
	case namespace == "" || name == "":
		return nil, errors.New("kube: a Lease needs a namespace and a name")
	case identity == "":
		return nil, errors.New("kube: a Lease contender needs an identity")
	case duration < time.Second:
		return nil, fmt.Errorf("kube: Lease duration %s is under a second", duration)
	}
	return &Lease{c: c, namespace: namespace, name: name, identity: identity, duration: duration.Truncate(time.Second), now: time.Now}, nil
}

// Name is the Lease's name.
func (l *Lease) Name() string { return l.name }

// Holder is the holderIdentity as last seen, empty when free or not read.
func (l *Lease) Holder() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.observed.holder()
}

// Held reports whether this contender held the Lease when it last looked.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held()
}

func (l *Lease) held() bool { return l.observed.holder() == l.identity }

func (l *Lease) path() string {
	return Path("coordination.k8s.io", "v1", l.namespace, "leases", l.name)
}

// TryAcquireOrRenew takes the Lease when it is free or expired, or renews
// it when this contender holds it. It returns whether this contender holds
// it now. Losing a race (the object changed since it was read, or another
// created it first) is false with no error; an error is an answer that
// says nothing about who holds it.
func (l *Lease) TryAcquireOrRenew(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	id := l.identity
	secs := int32(l.duration / time.Second)
	stamp := NewMicroTime(now)
	want := leaseSpec{HolderIdentity: &id, LeaseDurationSeconds: &secs, AcquireTime: &stamp, RenewTime: &stamp}

	var cur lease
	err := l.c.Get(ctx, l.path(), nil, &cur)
	if IsNotFound(err) {
		zero := int32(0)
		want.LeaseTransitions = &zero
		obj := lease{
			TypeMeta:   TypeMeta{Kind: "Lease", APIVersion: "coordination.k8s.io/v1"},
			ObjectMeta: ObjectMeta{Name: l.name, Namespace: l.namespace},
			Spec:       want,
		}
		var created lease
		err := l.c.Post(ctx, Path("coordination.k8s.io", "v1", l.namespace, "leases", ""), obj, &created)
		if IsAlreadyExists(err) {
			return false, nil // another contender created it first
		}
		if err != nil {
			return false, fmt.Errorf("creating Lease %s/%s: %w", l.namespace, l.name, err)
		}
		l.cached, l.observed, l.observedAt = &created, created.Spec, l.now()
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading Lease %s/%s: %w", l.namespace, l.name, err)
	}
	l.cached = &cur
	if !l.observed.equal(cur.Spec) {
		l.observed, l.observedAt = cur.Spec, l.now()
	}
	if l.observed.holder() != "" && l.observedAt.Add(l.leaseDuration()).After(now) && !l.held() {
		return false, nil // held by another and not expired
	}
	if l.held() {
		want.AcquireTime = cur.Spec.AcquireTime
		t := cur.Spec.transitions()
		want.LeaseTransitions = &t
	} else {
		t := cur.Spec.transitions() + 1
		want.LeaseTransitions = &t
	}
	ok, err := l.update(ctx, want)
	if err != nil || !ok {
		return false, err
	}
	return true, nil
}

// leaseDuration is how long the observed record holds: leaderelection
// uses its own configured duration for every holder, and so does this,
// since all of nodetune's contenders share one.
func (l *Lease) leaseDuration() time.Duration { return l.duration }

// update writes spec over the object as last read. A conflict (someone
// wrote since) is false with no error.
func (l *Lease) update(ctx context.Context, spec leaseSpec) (bool, error) {
	if l.cached == nil {
		return false, errors.New("kube: Lease update before it was read")
	}
	obj := *l.cached
	obj.TypeMeta = TypeMeta{Kind: "Lease", APIVersion: "coordination.k8s.io/v1"}
	obj.Spec = spec
	var out lease
	err := l.c.Put(ctx, l.path(), obj, &out)
	if IsConflict(err) || IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("updating Lease %s/%s: %w", l.namespace, l.name, err)
	}
	l.cached, l.observed, l.observedAt = &out, out.Spec, l.now()
	return true, nil
}

// Release gives the Lease up if this contender holds it: the holder is
// emptied, so the next contender takes it without waiting for it to
// expire. Releasing a Lease not held does nothing.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held() {
		return nil
	}
	secs := int32(l.duration / time.Second)
	t := l.observed.transitions()
	empty := ""
	ok, err := l.update(ctx, leaseSpec{HolderIdentity: &empty, LeaseDurationSeconds: &secs, LeaseTransitions: &t})
	if err != nil {
		return fmt.Errorf("releasing: %w", err)
	}
	if !ok {
		return fmt.Errorf("releasing Lease %s/%s: it changed since it was read", l.namespace, l.name)
	}
	return nil
}
