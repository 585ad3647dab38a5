package bench

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/testbed"
)

// DefaultPrefix names the namespaces of a bench run; Sweep removes the
// leftovers of crashed runs by it.
const DefaultPrefix = "ntbench"

// Options describe one bench run. The zero value measures a VXLAN tunnel
// with the testbed's default MTU, one stream, two seconds per case.
type Options struct {
	// Kind is the tunnel kind: "vxlan" (default), "geneve" or "ipip".
	Kind string
	// TunnelName, TunnelMTU, UnderlayMTU, VNI and Port shape the throwaway
	// tunnel; zero values take the testbed's defaults.
	TunnelName  string
	TunnelMTU   int
	UnderlayMTU int
	VNI, Port   int
	// NodeFeatures, when set, adds the "tunnel-node-features" case: these
	// ethtool features are copied onto both throwaway tunnel ends.
	NodeFeatures map[string]bool
	// NodeFixed lists features the node's driver does not let anyone
	// change; they are not copied.
	NodeFixed []string
	// Mirrored names the node device the options were copied from, if any.
	Mirrored string
	// Duration is how long each case is measured (default 2s).
	Duration time.Duration
	// Warmup is how long each case runs before measuring starts (default
	// 300ms), so slow start and the first ARP do not count.
	Warmup time.Duration
	// Streams is the number of parallel TCP connections (default 1).
	Streams int
	// Prefix starts the testbed's namespace names (default "ntbench").
	Prefix string
	// Log receives progress at debug level (default slog.Default()).
	Log *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Kind == "" {
		o.Kind = detect.KindVXLAN
	}
	if o.Duration == 0 {
		o.Duration = 2 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = 300 * time.Millisecond
	}
	if o.Streams == 0 {
		o.Streams = 1
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	switch {
	case o.Duration < 0 || o.Warmup < 0:
		return o, fmt.Errorf("bench: duration %s and warm-up %s must not be negative", o.Duration, o.Warmup)
	case o.Streams < 0 || o.Streams > 128:
		return o, fmt.Errorf("bench: %d streams: want 1 to 128", o.Streams)
	}
	return o, nil
}

// bed is the testbed the options describe.
func (o Options) bed() testbed.Options {
	return testbed.Options{
		Prefix: o.Prefix, Kind: o.Kind, TunnelName: o.TunnelName,
		UnderlayMTU: o.UnderlayMTU, TunnelMTU: o.TunnelMTU, VNI: o.VNI, Port: o.Port,
	}
}

// Mirror copies what matters of the node's tunnel t onto o: its kind, name,
// MTU, VNI and port, its underlay's MTU, and its ethtool features (for the
// "tunnel-node-features" case). IPv6 tunnels are mirrored over an IPv4
// testbed.
func (o *Options) Mirror(t detect.Tunnel) {
	o.Kind, o.TunnelName, o.Mirrored = t.Kind, t.Name, t.Name
	o.VNI, o.Port = int(t.VNI), t.Port
	o.TunnelMTU = t.MTU
	need := t.MTU + testbed.Overhead(t.Kind)
	o.UnderlayMTU = need
	if t.Underlay != nil && t.Underlay.MTU >= need {
		o.UnderlayMTU = t.Underlay.MTU
	}
	o.NodeFeatures, o.NodeFixed = nil, nil
	if !t.Features.Err.Failed() && len(t.Features.State) > 0 {
		o.NodeFeatures = t.Features.State
		o.NodeFixed = t.Features.Fixed
	}
}

// NodeTunnel picks the node tunnel a bench should mirror: the one named
// name, or when name is empty the first IPv4 tunnel that is up (else the
// first one), never a temporary tunnel of a peer measurement. ok is false
// when there is none.
func NodeTunnel(ts detect.Tunnels, name string) (t detect.Tunnel, ok bool) {
	var first *detect.Tunnel
	for i, d := range ts.Devices {
		if name == "" && detect.IsPeerTunnel(d.Name) {
			continue
		}
		if name != "" {
			if d.Name == name {
				return d, true
			}
			continue
		}
		if testbed.Overhead(d.Kind) == 0 {
			continue
		}
		if d.Up && !d.IPv6 {
			return d, true
		}
		if first == nil {
			first = &ts.Devices[i]
		}
	}
	if first != nil {
		return *first, true
	}
	return detect.Tunnel{}, false
}
