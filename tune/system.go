package tune

import (
	"context"
	"errors"
	"fmt"

	"github.com/safchain/ethtool"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
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
	switch k.Kind {
	case rules.ChangeFeature:
		return h.readFeature(k)
	case rules.ChangeSysctl:
		return h.readSysctl(k)
	case rules.ChangeRPS:
		return h.readRPS(k)
	case rules.ChangeModule:
		return h.readModule(k)
	}
	return Value{}, fmt.Errorf("reading %s: kind %q: %w", k, k.Kind, ErrNotAllowed)
}

// Writable reports why k cannot be written here, or nil.
func (h *Host) Writable(ctx context.Context, k Key) error {
	switch k.Kind {
	case rules.ChangeFeature:
		return h.featureWritable(k)
	case rules.ChangeSysctl:
		return h.sysctlWritable(k)
	case rules.ChangeRPS:
		return h.rpsWritable(k)
	case rules.ChangeModule:
		return h.moduleWritable(ctx, k)
	}
	return fmt.Errorf("writing %s: kind %q: %w", k, k.Kind, ErrNotAllowed)
}

// Write sets k to value.
func (h *Host) Write(ctx context.Context, k Key, value string) error {
	switch k.Kind {
	case rules.ChangeFeature:
		return h.writeFeature(k, value)
	case rules.ChangeSysctl:
		return h.writeSysctl(k, value)
	case rules.ChangeRPS:
		return h.writeRPS(k, value)
	case rules.ChangeModule:
		return h.writeModule(ctx, k, value)
	}
	return fmt.Errorf("writing %s: kind %q: %w", k, k.Kind, ErrNotAllowed)
}

// classify is detect.Classify: what was being done, and the sentinel.
var classify = detect.Classify

// same reports whether two values of a setting of kind mean the same.
func same(kind, a, b string) bool {
	switch kind {
	case rules.ChangeSysctl:
		x, errA := parseInt(a)
		y, errB := parseInt(b)
		return errA == nil && errB == nil && x == y
	case rules.ChangeRPS:
		x, errA := ParseCPUMask(a)
		y, errB := ParseCPUMask(b)
		return errA == nil && errB == nil && x.Equal(y)
	}
	return a == b
}
