package bench

import (
	"time"
)

// Case names, stable: serve exports them as the path label.
const (
	CaseUnderlay     = "underlay"
	CaseOffloadOn    = "tunnel-offload-on"
	CaseOffloadOff   = "tunnel-offload-off"
	CaseNodeFeatures = "tunnel-node-features"
)

// Path kinds of a case.
const (
	PathUnderlay = "underlay"
	PathTunnel   = "tunnel"
)

// Result is what one bench run measured.
type Result struct {
	// Kind and Tunnel are the throwaway tunnel's kind and device name.
	Kind   string `json:"kind"`
	Tunnel string `json:"tunnel"`
	// TunnelMTU and UnderlayMTU are the MTUs the testbed ran with.
	TunnelMTU   int `json:"tunnel_mtu"`
	UnderlayMTU int `json:"underlay_mtu"`
	// Mirrored names the node device whose settings were copied, if any.
	Mirrored string `json:"mirrored,omitempty"`
	// Streams is the number of parallel TCP connections of each case.
	Streams int `json:"streams"`
	// Duration is how long each case was measured, after Warmup.
	Duration time.Duration `json:"duration_ns"`
	Warmup   time.Duration `json:"warmup_ns"`
	// Started is when the run began.
	Started time.Time `json:"started"`
	Cases   []Case    `json:"cases"`
	Ratios  Ratios    `json:"ratios"`
	// MeasuredLoss is what turning tx checksum offload off cost the
	// tunnel, 1 - off/on; absent when either case is missing.
	MeasuredLoss *float64 `json:"measured_loss,omitempty"`
	// Swept lists leftover namespaces of crashed runs removed first.
	Swept []string `json:"swept,omitempty"`
}

// Case is one measured path.
type Case struct {
	// Name is one of the Case* constants.
	Name string `json:"name"`
	// Path is "underlay" or "tunnel".
	Path string `json:"path"`
	// BitsPerSecond is the TCP payload received per second.
	BitsPerSecond float64 `json:"bits_per_second"`
	// Bytes is the TCP payload received while measuring.
	Bytes int64 `json:"bytes"`
	// Elapsed is how long the measurement really took.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Features is the sending tunnel end's watched ethtool features during
	// a tunnel case.
	Features map[string]bool `json:"tunnel_features,omitempty"`
}

// Ratios compare the cases; a ratio whose cases were not both measured is
// zero and left out of JSON.
type Ratios struct {
	// TunnelOverUnderlay is tunnel-offload-on over underlay.
	TunnelOverUnderlay float64 `json:"tunnel_over_underlay,omitempty"`
	// OffOverOn is tunnel-offload-off over tunnel-offload-on.
	OffOverOn float64 `json:"offload_off_over_on,omitempty"`
	// NodeOverOn is tunnel-node-features over tunnel-offload-on.
	NodeOverOn float64 `json:"node_features_over_on,omitempty"`
}

// newCase computes a case's rate from what it received.
func newCase(name, path string, bytes int64, elapsed time.Duration) Case {
	c := Case{Name: name, Path: path, Bytes: bytes, Elapsed: elapsed}
	if elapsed > 0 {
		c.BitsPerSecond = float64(bytes) * 8 / elapsed.Seconds()
	}
	return c
}

// Case returns the case named name, if it was measured.
func (r Result) Case(name string) (Case, bool) {
	for _, c := range r.Cases {
		if c.Name == name {
			return c, true
		}
	}
	return Case{}, false
}

// Loss is what turning tx checksum offload off cost the tunnel, as a
// ratio of its throughput with offload on (1 - off/on, clamped to 0..1):
// the figure rules.Config.MeasuredLoss takes. ok is false unless both
// cases were measured.
func (r Result) Loss() (loss float64, ok bool) {
	on, okOn := r.Case(CaseOffloadOn)
	off, okOff := r.Case(CaseOffloadOff)
	if !okOn || !okOff || on.BitsPerSecond <= 0 {
		return 0, false
	}
	return min(max(1-off.BitsPerSecond/on.BitsPerSecond, 0), 1), true
}

// ThroughputByCase maps each case name to its bits per second, for
// nodetune_measured_throughput_bps{path}.
func (r Result) ThroughputByCase() map[string]float64 {
	m := make(map[string]float64, len(r.Cases))
	for _, c := range r.Cases {
		m[c.Name] = c.BitsPerSecond
	}
	return m
}

// summarize fills in the ratios and the measured loss from the cases.
func (r *Result) summarize() {
	ratio := func(num, den string) float64 {
		a, okA := r.Case(num)
		b, okB := r.Case(den)
		if !okA || !okB || b.BitsPerSecond <= 0 {
			return 0
		}
		return a.BitsPerSecond / b.BitsPerSecond
	}
	r.Ratios = Ratios{
		TunnelOverUnderlay: ratio(CaseOffloadOn, CaseUnderlay),
		OffOverOn:          ratio(CaseOffloadOff, CaseOffloadOn),
		NodeOverOn:         ratio(CaseNodeFeatures, CaseOffloadOn),
	}
	r.MeasuredLoss = nil
	if l, ok := r.Loss(); ok {
		r.MeasuredLoss = &l
	}
}
