package tune

import (
	"fmt"
	"time"

	"github.com/nodetune/nodetune/detect"
)

// throughputKind is a Kind some of whose changes are made to raise
// throughput (tx checksum offload turned on; later RPS masks and queue
// counts). Such a change is followed by a measurement against a peer, and
// undone when the path measured slower (verify.go).
type throughputKind interface {
	// RaisesThroughput reports whether c is made to raise throughput.
	RaisesThroughput(c Change) bool
	// Helps says what a peer measurement m says about c on its own
	// subject: whether c measured no slower than without it, beyond the
	// noise margin, and whether m measured that at all.
	Helps(c Change, m detect.PeerMeasurement, margin float64) (helps, measured bool)
}

// RaisesThroughput reports whether c is made to raise throughput, as its
// kind says: such a change is verified by measuring.
func (ks Kinds) RaisesThroughput(c Change) bool {
	tk, ok := ks.kind(c.Key).(throughputKind)
	return ok && tk.RaisesThroughput(c)
}

// Measured is what measuring a change made to raise throughput found: the
// throughput of one path to one peer just before the change and just
// after it. The journal keeps it with the entry it undid and with the
// hold that keeps the change from being made again.
type Measured struct {
	// Peer is the node measured against, as it was reached.
	Peer string `json:"peer"`
	// Device is this node's tunnel device the measured path goes through.
	Device string `json:"device,omitempty"`
	// Path is the measured case and direction, such as "tunnel send".
	Path string `json:"path"`
	// Before and After are the path's bits per second.
	Before float64 `json:"before_bps"`
	After  float64 `json:"after_bps"`
	// BeforeAt and AfterAt are when each measurement ended.
	BeforeAt time.Time `json:"before_at"`
	AfterAt  time.Time `json:"after_at"`
	// Margin is the share of throughput that could be lost to noise: a
	// fall by more than it counts as slower.
	Margin float64 `json:"margin"`
	// Note says what else the after measurement showed, such as a tunnel
	// case that failed while the underlay carried traffic.
	Note string `json:"note,omitempty"`
}

// Slower reports whether m's path fell by more than its noise margin.
func (m Measured) Slower() bool { return m.After < m.Before*(1-m.Margin) }

// String is the two figures for a person.
func (m Measured) String() string {
	s := fmt.Sprintf("%s to %s: %s before, %s after", m.Path, m.Peer, detect.Rate(m.Before), detect.Rate(m.After))
	if m.Note != "" {
		s += " (" + m.Note + ")"
	}
	return s
}

// measuredPath is the path a change on device is judged by: the CNI
// tunnel, in the send direction, which is the path this node's tx
// offload is on. A measurement taken through another tunnel device says
// nothing about a change on device.
const measuredPath = detect.PeerCaseTunnel + " " + detect.PeerSend

// tunnelSend returns the tunnel send case of m as evidence about a change
// on device: its rate, and why it is no evidence when it is not. With
// after set, a tunnel case that failed while the host case carried traffic
// is a rate of zero (the underlay works and the tunnel does not); before a
// change, such a path is no baseline.
func tunnelSend(m detect.PeerMeasurement, device string, after bool) (bps float64, note string, err error) {
	if m.Device != "" && device != "" && m.Device != device {
		return 0, "", fmt.Errorf("the measurement went through %s, not %s, where the change was made", m.Device, device)
	}
	for _, c := range m.Cases {
		if c.Name != detect.PeerCaseTunnel || c.Direction != detect.PeerSend {
			continue
		}
		if c.Err.IsZero() {
			return c.BitsPerSecond, "", nil
		}
		if after {
			if h, ok := m.Case(detect.PeerCaseHost, detect.PeerSend); ok {
				return 0, fmt.Sprintf("the tunnel case failed (%v) while the underlay carried %s", c.Err, detect.Rate(h.BitsPerSecond)), nil
			}
		}
		return 0, "", fmt.Errorf("the tunnel case failed: %v", c.Err)
	}
	return 0, "", fmt.Errorf("the measurement has no %s case", measuredPath)
}

// Compare judges a change on device by two measurements to the same peer,
// before and after it, with a noise margin: the Measured of the tunnel's
// send path, or why the two are no evidence about the change (a failed
// or missing case, another device, another peer). It is pure.
func Compare(before, after detect.PeerMeasurement, device string, margin float64) (Measured, error) {
	m := Measured{Peer: after.Peer, Device: device, Path: measuredPath, BeforeAt: before.At, AfterAt: after.At, Margin: margin}
	if m.Peer == "" {
		m.Peer = after.Address
	}
	if before.Peer != after.Peer || before.Address != after.Address {
		return m, fmt.Errorf("the measurements before and after are of different peers (%s, %s)", before.Peer, after.Peer)
	}
	var err error
	if m.Before, _, err = tunnelSend(before, device, false); err != nil {
		return m, fmt.Errorf("before the change: %w", err)
	}
	if m.Before <= 0 {
		return m, fmt.Errorf("before the change: the tunnel carried nothing, so there is nothing to compare with")
	}
	if m.After, m.Note, err = tunnelSend(after, device, true); err != nil {
		return m, fmt.Errorf("after the change: %w", err)
	}
	return m, nil
}
