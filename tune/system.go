package tune

import (
	"context"
	"errors"
	"fmt"

	"github.com/safchain/ethtool"

	"github.com/nodetune/nodetune/detect"
)

// System is the host as tune sees it, one setting at a time. *Host is the
// real one; tests use fixture trees or a fake.
type System interface {
	// Read returns the setting's current value.
	Read(ctx context.Context, k Key) (Value, error)
	// Writable reports why the setting cannot be written here, or nil. It
	// writes nothing, so a change that cannot be made is never journaled.
	Writable(ctx context.Context, k Key) error
	// Write sets the setting to value.
	Write(ctx context.Context, k Key, value string) error
	// Device identifies the network device named name (device.go); an
	// error wraps ErrGone when there is none.
	Device(ctx context.Context, name string) (Device, error)
	// DeviceAt returns the name and identity of the device with ifindex
	// index; an error wraps ErrGone when there is none.
	DeviceAt(ctx context.Context, index int) (string, Device, error)
	// NetNSAlive reports whether the network namespace id
	// ("net:[inode]") still exists (netns.go).
	NetNSAlive(ctx context.Context, id string) (bool, error)
}

// Ethtool is the part of ethtool tune uses. *ethtool.Ethtool satisfies it.
type Ethtool interface {
	FeaturesWithState(dev string) (map[string]ethtool.FeatureState, error)
	Change(dev string, config map[string]bool) error
}

var _ Ethtool = (*ethtool.Ethtool)(nil)

// Host is the real System: ethtool features through the ethtool ioctls,
// sysctls under <ProcFS>/sys, RPS masks under <SysFS>/class/net, and kernel
// modules through modprobe (read from <ProcFS>/modules, <SysFS>/module and
// <RootFS>/lib/modules). In a network namespace it sees and changes that
// namespace's devices and per-namespace sysctls.
type Host struct {
	ProcFS string
	SysFS  string
	// RootFS is the host's root filesystem, where modules.builtin is read
	// under lib/modules; empty means "/".
	RootFS  string
	Ethtool Ethtool
	// Links identifies devices (device.go); nil leaves entries without a
	// device identity, handled by name alone.
	Links Links
	// Modprobe is the modprobe program; empty looks it up in PATH.
	Modprobe string
	// More are kinds of setting beyond the built-in ones (HostKinds), each
	// carrying its own dependencies, such as a Kubernetes client.
	More []Kind
}

func (h *Host) rootFS() string {
	if h.RootFS == "" {
		return "/"
	}
	return h.RootFS
}

var _ System = (*Host)(nil)

// NewHost returns the System for the host whose procfs and sysfs are
// mounted at procfs and sysfs, changing features through et.
func NewHost(procfs, sysfs string, et Ethtool) *Host {
	return &Host{ProcFS: procfs, SysFS: sysfs, Ethtool: et}
}

// ErrNotAllowed marks a change outside nodetune's allowlist.
var ErrNotAllowed = errors.New("not on nodetune's allowlist")

// Read returns the current value of k.
func (h *Host) Read(ctx context.Context, k Key) (Value, error) {
	kind, err := h.Kinds().Lookup(k.Kind)
	if err != nil {
		return Value{}, fmt.Errorf("reading %s: %w", k, err)
	}
	return kind.Read(ctx, k)
}

// Writable reports why k cannot be written here, or nil.
func (h *Host) Writable(ctx context.Context, k Key) error {
	kind, err := h.Kinds().Lookup(k.Kind)
	if err != nil {
		return fmt.Errorf("writing %s: %w", k, err)
	}
	return kind.Writable(ctx, k)
}

// Write sets k to value.
func (h *Host) Write(ctx context.Context, k Key, value string) error {
	kind, err := h.Kinds().Lookup(k.Kind)
	if err != nil {
		return fmt.Errorf("writing %s: %w", k, err)
	}
	return kind.Write(ctx, k, value)
}

// classify is detect.Classify: what was being done, and the sentinel.
var classify = detect.Classify
