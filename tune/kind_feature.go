package tune

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// Feature values.
const (
	on  = "on"
	off = "off"
)

// SegmentationFeatures are the tx segmentation features the kernel drops
// (keeping them requested on) when tx checksumming goes off, and brings back
// when it comes on again.
var SegmentationFeatures = []string{
	detect.FeatureTSO,
	"tx-tcp-ecn-segmentation",
	"tx-tcp-mangleid-segmentation",
	detect.FeatureTSO6,
	"tx-udp-segmentation",
}

// allowedFeatures are the ethtool features tune may change on a tunnel.
var allowedFeatures = append([]string{detect.FeatureTxChecksumGeneric}, SegmentationFeatures...)

// vetFeature checks an ethtool feature change: an allowed tx feature of a
// tunnel device in s, and never tx offload on where the kernel lacks the NAT
// checksum fix or bad UDP checksums are arriving.
func vetFeature(s *detect.Snapshot, c *Change) Refusal {
	if !slices.Contains(allowedFeatures, c.Setting) {
		return refuse(ReasonAllowlist, "ethtool feature %q is not on nodetune's allowlist", c.Setting)
	}
	if c.To != on && c.To != off {
		return refuse(ReasonAllowlist, "ethtool feature value %q is neither on nor off", c.To)
	}
	i := slices.IndexFunc(s.Tunnels.Devices, func(t detect.Tunnel) bool { return t.Name == c.Target })
	if i < 0 {
		return refuse(ReasonAllowlist, "%s is not a tunnel device nodetune probed", c.Target)
	}
	t := s.Tunnels.Devices[i]
	if t.Features.Err.Failed() {
		return refuse(ReasonUnknown, "the features of %s could not be read: %v", t.Name, t.Features.Err)
	}
	active, ok := t.Features.Has(c.Setting)
	if !ok {
		return refuse(ReasonUnknown, "%s has no feature %s in the snapshot", t.Name, c.Setting)
	}
	if t.Features.IsFixed(c.Setting) {
		return refuse(ReasonGate, "the driver of %s does not let %s change", t.Name, c.Setting)
	}
	c.From = detect.OnOff(active)
	if c.To == on {
		if r := offloadGate(s, t.Name); r.Refused() {
			return r
		}
	}
	if c.Setting == detect.FeatureTxChecksumGeneric && c.To == on {
		c.Notes = append(c.Notes, "the kernel brings back the tx segmentation features it dropped with it ("+
			strings.Join(SegmentationFeatures, ", ")+"); nodetune checks, and turns on any that stay off")
	}
	return Refusal{}
}

// offloadGate says why tx offload must not be turned on, or refuses
// nothing. It stands apart from the rules: whatever a finding says, tune
// checks the kernel and the receive-side evidence itself, through detect's
// one decision about it (detect.UDP.OffloadOnBlocked): never on
// unattributed or tunnel bad checksums, nor on one quiet window after
// errors since boot; and never where a recent peer measurement of this very
// device found offload on slower than off (detect.Snapshot.PeerOffloadOnBlocked).
// What it could not check (the kernel release or the
// checksum counters unreadable, a kernel whose fix status is unknown) is
// refused as ReasonUnknown, what the evidence rules out as ReasonGate.
func offloadGate(s *detect.Snapshot, dev string) Refusal {
	switch fix := s.Kernel.Version.NATChecksumFix(); {
	case s.Kernel.Err.Failed():
		return refuse(ReasonUnknown, "the kernel release could not be read, so nodetune cannot tell whether it has the NAT checksum fix: %s", s.Kernel.Err.Error())
	case fix == detect.FixUnknown:
		return refuse(ReasonUnknown, "kernel %s may lack the NAT checksum fix (commit ea64d8d6c675; status %s); tx checksum offload stays off",
			s.Kernel.Release, fix)
	case fix != detect.FixPresent:
		return refuse(ReasonGate, "kernel %s may lack the NAT checksum fix (commit ea64d8d6c675; status %s); tx checksum offload stays off",
			s.Kernel.Release, fix)
	}
	why := s.UDP.OffloadOnBlocked()
	switch {
	case why == "":
		if why := s.PeerOffloadOnBlocked(dev); why != "" {
			return refuse(ReasonGate, "%s", why)
		}
		if err := s.Peers.Err; err.Failed() {
			// One of the saved measurements may have found offload
			// slower on this very device.
			return refuse(ReasonUnknown, "the saved peer measurements could not be read, and one may have found offload on slower than off on %s: %s", dev, err.Error())
		}
		return Refusal{}
	case s.UDP.Readable() != nil:
		return refuse(ReasonUnknown, "%s", why)
	}
	return refuse(ReasonGate, "%s", why)
}

// validFeature checks a feature key against the allowlist, whatever
// planned it: rollback writes what the journal says, and the journal is a
// file.
func validFeature(k Key) error {
	if !slices.Contains(allowedFeatures, k.Setting) {
		return fmt.Errorf("ethtool feature %s of %s: %w", k.Setting, k.Target, ErrNotAllowed)
	}
	if k.Target == "" || len(k.Target) > 15 || strings.ContainsAny(k.Target, "/ ") || k.Target == "." || k.Target == ".." {
		return fmt.Errorf("ethtool feature %s of %q: not a device name: %w", k.Setting, k.Target, ErrNotAllowed)
	}
	return nil
}

func (h *Host) featureState(k Key) (map[string]bool, Value, error) {
	if err := validFeature(k); err != nil {
		return nil, Value{}, err
	}
	states, err := h.Ethtool.FeaturesWithState(k.Target)
	if err != nil {
		return nil, Value{}, classify("reading the ethtool features of "+k.Target, err)
	}
	st, ok := states[k.Setting]
	if !ok {
		return nil, Value{}, fmt.Errorf("reading the ethtool features of %s: %w: no feature %s", k.Target, detect.ErrNotSupported, k.Setting)
	}
	avail := map[string]bool{}
	for name, st := range states {
		avail[name] = st.Available
	}
	return avail, Value{Set: detect.OnOff(st.Requested), Effective: detect.OnOff(st.Active)}, nil
}

func (h *Host) readFeature(k Key) (Value, error) {
	_, v, err := h.featureState(k)
	return v, err
}

func (h *Host) featureWritable(k Key) error {
	avail, _, err := h.featureState(k)
	if err != nil {
		return err
	}
	if !avail[k.Setting] {
		return fmt.Errorf("changing %s on %s: %w: the driver keeps it fixed", k.Setting, k.Target, detect.ErrNotSupported)
	}
	return nil
}

func (h *Host) writeFeature(k Key, value string) error {
	if err := validFeature(k); err != nil {
		return err
	}
	if value != on && value != off {
		return fmt.Errorf("setting %s on %s: value %q is neither on nor off", k.Setting, k.Target, value)
	}
	err := h.Ethtool.Change(k.Target, map[string]bool{k.Setting: value == on})
	return classify(fmt.Sprintf("setting %s %s on %s", k.Setting, value, k.Target), err)
}

// featureKind is an ethtool feature of a tunnel device, changed through
// the ethtool ioctls; its values are "on" and "off".
type featureKind struct{ h *Host }

func (featureKind) Name() string                              { return rules.ChangeFeature }
func (featureKind) Vet(s *detect.Snapshot, c *Change) Refusal { return vetFeature(s, c) }
func (featureKind) Equal(a, b string) bool                    { return a == b }
func (featureKind) Irreversible() string                      { return "" }
func (featureKind) PerNetNS() bool                            { return true }
func (featureKind) Stepwise() bool                            { return false }
func (featureKind) Device(k Key) string                       { return k.Target }
func (featureKind) OnDevice(k Key, name string) Key           { k.Target = name; return k }
func (featureKind) Command(k Key, value string) string        { return ruleCommand(k, value) }

func (f featureKind) Read(ctx context.Context, k Key) (Value, error) {
	h, err := hostOf(f.h)
	if err != nil {
		return Value{}, err
	}
	return h.readFeature(k)
}

func (f featureKind) Writable(ctx context.Context, k Key) error {
	h, err := hostOf(f.h)
	if err != nil {
		return err
	}
	return h.featureWritable(k)
}

func (f featureKind) Write(ctx context.Context, k Key, value string) error {
	h, err := hostOf(f.h)
	if err != nil {
		return err
	}
	return h.writeFeature(k, value)
}

// RaisesThroughput reports whether c turns tx checksum offload on: the
// change nodetune makes to raise a tunnel's throughput, which on some
// NIC paths lowers it instead.
func (featureKind) RaisesThroughput(c Change) bool {
	return c.Setting == detect.FeatureTxChecksumGeneric && c.To == on
}

// Helps reads, for tx checksum offload turned on for device c.Target, a
// peer measurement's temporary tunnel copied from that device, with
// offload on and off side by side: it helps when on ran no slower than
// off beyond margin.
func (featureKind) Helps(c Change, m detect.PeerMeasurement, margin float64) (helps, measured bool) {
	if c.Setting != detect.FeatureTxChecksumGeneric || c.To != on || m.Device != c.Target {
		return false, false
	}
	onBps, offBps, ok := m.OffloadEffect()
	if !ok {
		return false, false
	}
	return onBps >= offBps*(1-margin), true
}

// FollowUps are, for tx checksum offload turned on, the tx segmentation
// features of its device: the kernel restores those it dropped, since they
// stay requested on, and Apply turns on any an operator had turned off.
func (featureKind) FollowUps(c Change) []Change {
	if c.Setting != detect.FeatureTxChecksumGeneric || c.To != on {
		return nil
	}
	out := make([]Change, 0, len(SegmentationFeatures))
	for _, f := range SegmentationFeatures {
		out = append(out, Change{Key: Key{Kind: rules.ChangeFeature, Target: c.Target, Setting: f}, To: on,
			Rule: c.Rule, Subject: c.Subject, Why: "tx segmentation offload, dropped with tx checksum offload", vetted: true})
	}
	return out
}
