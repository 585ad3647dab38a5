package tune

import (
	"context"
	"fmt"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// Kind is one kind of setting tune may change: an ethtool feature, a
// sysctl, an RPS mask, a kernel module, and next an object in the
// Kubernetes API. It is everything tune, rules and the daemon need to
// know about the kind; none of them switch on a kind's name.
//
// To add a kind, write one file (kind_<name>.go) with a type that
// implements Kind and carries its own dependencies (a client, a root
// path), and its tests:
//   - Name is the rules.SettingKey.Kind its findings use.
//   - Vet is pure: it checks a planned change against the kind's
//     allowlist, bounds and gates using only the snapshot, fills c.From
//     (and c.Notes), and returns why the change is refused, or the zero
//     Refusal. Unknown evidence refuses with ReasonUnknown. An empty From
//     turns Apply's staleness check off, so a kind whose setting may be
//     absent (an object not yet created) spells absence as a value.
//   - Read, Writable and Write do the I/O. Writable writes nothing. Values
//     are strings; a kind whose value is a document may use its text.
//   - Equal says whether two values mean the same setting ("1" and "1\n"
//     for a sysctl), so a revert is never mis-detected.
//   - Command renders a write as what a person would run ("" when there is
//     none).
//   - Irreversible is "" when rollback writes the original back, or says
//     why rollback leaves the value in place.
//   - PerNetNS reports whether the setting lives in a network namespace
//     (journal entries are then handled only from that namespace).
//   - Stepwise reports whether each write is one bounded step of a value
//     that grows (a sysctl), which serve takes at most once per window.
//
// Then register it where its dependencies are known: built-in host
// kinds in HostKinds, any other in Host.More (from cmd). A kind whose
// setting belongs to a network device may also implement deviceSetting,
// and then follows renames and is closed when its device is gone. A kind
// some of whose changes are made to raise throughput implements
// throughputKind (measured.go): those changes are then measured against a
// peer before and after, and undone when slower (Tuner.ApplyVerified).
// TestKindsContract runs every kind registered on its test Host through
// its fixtures.
type Kind interface {
	Name() string
	Vet(s *detect.Snapshot, c *Change) Refusal
	Read(ctx context.Context, k Key) (Value, error)
	Writable(ctx context.Context, k Key) error
	Write(ctx context.Context, k Key, value string) error
	Equal(a, b string) bool
	Command(k Key, value string) string
	Irreversible() string
	PerNetNS() bool
	Stepwise() bool
}

// deviceSetting is a Kind whose settings belong to a network device.
type deviceSetting interface {
	// Device is the device k's setting belongs to.
	Device(k Key) string
	// OnDevice returns k with its device renamed to name.
	OnDevice(k Key, name string) Key
}

// followUps is a Kind whose change brings further changes with it, which
// Apply checks and makes (each journaled) once the change is in place.
type followUps interface {
	FollowUps(c Change) []Change
}

// Kinds are the registered kinds of setting, by name.
type Kinds map[string]Kind

// NewKinds registers ks by their names.
func NewKinds(ks ...Kind) Kinds {
	out := make(Kinds, len(ks))
	for _, k := range ks {
		out[k.Name()] = k
	}
	return out
}

// Lookup returns the kind named name; an unregistered kind is outside
// the allowlist.
func (ks Kinds) Lookup(name string) (Kind, error) {
	if k, ok := ks[name]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("change kind %q: %w", name, ErrNotAllowed)
}

// Equal reports whether a and b mean the same value of k's setting; for an
// unregistered kind, whether they are the same string.
func (ks Kinds) Equal(k Key, a, b string) bool { return ks.kind(k).Equal(a, b) }

// KindSource is a System that says which kinds it can change. *Host is
// one; a System that is not gets the built-in kinds' pure behaviour.
type KindSource interface {
	Kinds() Kinds
}

// HostKinds are the built-in kinds, reading and writing through h. With a
// nil h they only vet, compare and render commands, and their I/O fails.
func HostKinds(h *Host) Kinds {
	return NewKinds(featureKind{h}, sysctlKind{h}, rpsKind{h}, moduleKind{h})
}

// Kinds returns the built-in kinds and h.More.
func (h *Host) Kinds() Kinds {
	ks := HostKinds(h)
	for _, k := range h.More {
		ks[k.Name()] = k
	}
	return ks
}

// KindsOf is what sys can change: its own kinds, or the built-in ones.
func KindsOf(sys System) Kinds {
	if src, ok := sys.(KindSource); ok {
		return src.Kinds()
	}
	return HostKinds(nil)
}

// errNoHost is the I/O of a kind that was registered without a host.
var errNoHost = fmt.Errorf("no host to change: %w", detect.ErrNotSupported)

// hostOf returns h, or errNoHost when there is none.
func hostOf(h *Host) (*Host, error) {
	if h == nil {
		return nil, errNoHost
	}
	return h, nil
}

// ruleCommand is the shell command rules renders for writing value to k.
func ruleCommand(k Key, value string) string {
	return rules.Change{Kind: k.Kind, Target: k.Target, Setting: k.Setting, Value: value}.Command()
}

// unknownKind stands for a kind no one registered (a journal written by a
// newer nodetune): it is refused and never written, its values compare as
// strings, and its entries belong to their network namespace.
type unknownKind struct{ name string }

func (u unknownKind) Name() string { return u.name }
func (u unknownKind) Vet(s *detect.Snapshot, c *Change) Refusal {
	return refuse(ReasonAllowlist, "change kind %q is not on nodetune's allowlist", u.name)
}
func (u unknownKind) Read(ctx context.Context, k Key) (Value, error) {
	return Value{}, fmt.Errorf("reading %s: change kind %q: %w", k, u.name, ErrNotAllowed)
}
func (u unknownKind) Writable(ctx context.Context, k Key) error {
	return fmt.Errorf("writing %s: change kind %q: %w", k, u.name, ErrNotAllowed)
}
func (u unknownKind) Write(ctx context.Context, k Key, value string) error { return u.Writable(ctx, k) }
func (unknownKind) Equal(a, b string) bool                                 { return a == b }
func (unknownKind) Command(k Key, value string) string                     { return ruleCommand(k, value) }
func (unknownKind) Irreversible() string                                   { return "" }
func (unknownKind) PerNetNS() bool                                         { return true }
func (unknownKind) Stepwise() bool                                         { return false }

// kind returns the kind of k's setting, or unknownKind.
func (ks Kinds) kind(k Key) Kind {
	if kind, ok := ks[k.Kind]; ok {
		return kind
	}
	return unknownKind{k.Kind}
}

// kind returns the kind of k's setting on t's System.
func (t *Tuner) kind(k Key) Kind { return t.Kinds().kind(k) }

// Equal reports whether a and b mean the same value of k's setting, as
// tune compares them when it verifies a write or detects a revert. The
// daemon uses it, so the two never disagree.
func (t *Tuner) Equal(k Key, a, b string) bool { return t.kind(k).Equal(a, b) }

// Kinds are the kinds of setting t changes: its System's, looked up
// each time, so a kind registered after Open (Host.More) is the Tuner's
// as soon as the System dispatches to it.
func (t *Tuner) Kinds() Kinds { return KindsOf(t.sys) }

func (t *Tuner) equal(k Key, a, b string) bool { return t.kind(k).Equal(a, b) }

// Stepwise reports whether k's kind is changed one bounded step at a time.
func (ks Kinds) Stepwise(k Key) bool { return ks.kind(k).Stepwise() }
