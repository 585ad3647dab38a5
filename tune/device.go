package tune

import (
	"context"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/nodetune/nodetune/internal/shell"
)

// ErrGone marks a setting whose subject no longer exists: a device deleted
// (or deleted and created again under the same name, which makes it another
// device), or a network namespace that has been destroyed. The original
// value went with it, so there is nothing to restore.
var ErrGone = errors.New("gone")

// Device is what identifies a network device beyond its name, as the
// journal records it: a name can be reused by another device (a CNI that
// restarts deletes its tunnel and creates a new one with the same name),
// and a device can be renamed. Within one network namespace the kernel
// does not hand an ifindex to a new device while the counter has not
// wrapped, and the kind, VNI, port and permanent address tell a new link
// from the old one should it ever do so.
type Device struct {
	// Index is the ifindex.
	Index int `json:"ifindex"`
	// Kind is the link kind netlink reports: vxlan, veth, device, ...
	Kind string `json:"kind,omitempty"`
	// VNI and Port are a VXLAN device's network identifier and UDP port.
	VNI  uint32 `json:"vni,omitempty"`
	Port int    `json:"port,omitempty"`
	// MAC is the address when the entry was made. It is recorded for a
	// person reading the journal; an admin may change it on the same
	// device, so it is not compared.
	MAC string `json:"mac,omitempty"`
	// PermAddr is the permanent hardware address, which a NIC keeps for
	// life; empty for virtual devices.
	PermAddr string `json:"perm_addr,omitempty"`
}

// Is reports whether d and o are the same device.
func (d Device) Is(o Device) bool {
	return d.Index == o.Index && d.Kind == o.Kind && d.VNI == o.VNI && d.Port == o.Port && d.PermAddr == o.PermAddr
}

// String describes the device for a person.
func (d Device) String() string {
	s := fmt.Sprintf("ifindex %d, %s", d.Index, d.Kind)
	if d.VNI != 0 || d.Port != 0 {
		s += fmt.Sprintf(" vni %d port %d", d.VNI, d.Port)
	}
	return s
}

// Links is the part of netlink that identifies devices. *netlink.Handle
// satisfies it.
type Links interface {
	LinkByName(name string) (netlink.Link, error)
	LinkByIndex(index int) (netlink.Link, error)
}

var _ Links = (*netlink.Handle)(nil)

// deviceOf is the device a key's setting belongs to: the device of an
// ethtool feature, the device of an RPS queue; "" for a kind that belongs
// to no device (sysctls, global or per network namespace; modules).
func (t *Tuner) deviceOf(k Key) string {
	if d, ok := t.kind(k).(deviceSetting); ok {
		return d.Device(k)
	}
	return ""
}

// renamed returns k with its device renamed to name.
func (t *Tuner) renamed(k Key, name string) Key {
	if d, ok := t.kind(k).(deviceSetting); ok {
		return d.OnDevice(k, name)
	}
	return k
}

func identity(l netlink.Link) Device {
	a := l.Attrs()
	d := Device{Index: a.Index, Kind: l.Type(), MAC: a.HardwareAddr.String()}
	if len(a.PermHWAddr) > 0 {
		d.PermAddr = a.PermHWAddr.String()
	}
	if v, ok := l.(*netlink.Vxlan); ok {
		d.VNI, d.Port = uint32(v.VxlanId), v.Port
	}
	return d
}

// Device identifies the device named name. A missing device is an error
// wrapping ErrGone; a Host without Links cannot tell, and says so with
// ErrNotSupported.
func (h *Host) Device(ctx context.Context, name string) (Device, error) {
	if h.Links == nil {
		return Device{}, fmt.Errorf("identifying device %s: %w: no netlink handle", shell.Escape(name), errNoIdentity)
	}
	l, err := h.Links.LinkByName(name)
	if err != nil {
		return Device{}, linkErr("device "+shell.Escape(name), err)
	}
	return identity(l), nil
}

// DeviceAt returns the name and identity of the device with ifindex index.
func (h *Host) DeviceAt(ctx context.Context, index int) (string, Device, error) {
	if h.Links == nil {
		return "", Device{}, fmt.Errorf("finding ifindex %d: %w: no netlink handle", index, errNoIdentity)
	}
	l, err := h.Links.LinkByIndex(index)
	if err != nil {
		return "", Device{}, linkErr(fmt.Sprintf("ifindex %d", index), err)
	}
	return l.Attrs().Name, identity(l), nil
}

// errNoIdentity marks a System that cannot identify devices: entries made
// through it carry no identity, and are handled by name as journal
// version 1 did.
var errNoIdentity = errors.New("device identity unknown")

func linkErr(what string, err error) error {
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return fmt.Errorf("%s: %w: no such device", what, ErrGone)
	}
	return classify("looking up "+what, err)
}

// locate finds the device an entry was made on. It returns the key to use
// now: k itself while the device still has its name, k with the new name
// when the device was renamed, and an error wrapping ErrGone when no
// device in this namespace is the one the entry recorded (deleted, or
// deleted and created again). A key with no device is returned as it is,
// and so is an entry without an identity (journal version 1, or a host
// without netlink) while a device has its name; when none has, the entry
// is gone too: by name it can never be restored.
func (t *Tuner) locate(ctx context.Context, k Key, want *Device) (Key, string, error) {
	name := t.deviceOf(k)
	if name == "" {
		return k, "", nil
	}
	if want == nil {
		if _, err := t.sys.Device(ctx, name); errors.Is(err, ErrGone) {
			return k, "", fmt.Errorf("%s: %w: no device is named %s now, and the entry records no identity (made by an earlier nodetune, or without netlink) to follow a rename by, so it cannot be restored", k, ErrGone, shell.Escape(name))
		}
		return k, "", nil
	}
	got, err := t.sys.Device(ctx, name)
	if err == nil && got.Is(*want) {
		return k, "", nil
	}
	if err != nil && !errors.Is(err, ErrGone) {
		return k, "", err
	}
	now, found, ferr := t.sys.DeviceAt(ctx, want.Index)
	switch {
	case ferr == nil && found.Is(*want):
		return t.renamed(k, now), fmt.Sprintf("device %s is now named %s", shell.Escape(name), shell.Escape(now)), nil
	case ferr != nil && !errors.Is(ferr, ErrGone):
		return k, "", ferr
	case err == nil:
		return k, "", fmt.Errorf("%s: %w: the device nodetune changed (%s) was deleted; the device named %s now is another one (%s), and nodetune leaves it alone",
			k, ErrGone, want, shell.Escape(name), got)
	}
	return k, "", fmt.Errorf("%s: %w: the device nodetune changed (%s) was deleted, and its original value with it", k, ErrGone, want)
}

// Locate returns the key of entry e's setting as it is named now (its
// device may have been renamed), or an error wrapping ErrGone when the
// device the entry was made on no longer exists.
func (t *Tuner) Locate(ctx context.Context, e Entry) (Key, error) {
	k, _, err := t.locate(ctx, e.Key, e.Device)
	return k, err
}

// identify returns the identity to journal for a change to k, or nil when
// k has no device or the System cannot identify devices.
func (t *Tuner) identify(ctx context.Context, k Key) (*Device, error) {
	name := t.deviceOf(k)
	if name == "" {
		return nil, nil
	}
	d, err := t.sys.Device(ctx, name)
	if errors.Is(err, errNoIdentity) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &d, nil
}
