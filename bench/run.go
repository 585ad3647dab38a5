package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/testbed"
)

// running admits one bench at a time: two at once on the same CPUs would
// each measure half a machine.
var running = make(chan struct{}, 1)

// step is one case of a run: how to set the tunnel up, and which path to
// measure.
type step struct {
	name     string
	path     string
	features map[string]bool // set on both tunnel ends first; nil leaves them
	// copied marks the node's feature set: features the node holds fixed
	// are skipped, and ones this kernel keeps are tolerated.
	copied bool
}

// steps lists the cases o asks for, in order.
func (o Options) steps() []step {
	s := []step{
		{name: CaseUnderlay, path: PathUnderlay},
		{name: CaseOffloadOn, path: PathTunnel, features: map[string]bool{detect.FeatureTxChecksumGeneric: true}},
		{name: CaseOffloadOff, path: PathTunnel, features: map[string]bool{detect.FeatureTxChecksumGeneric: false}},
	}
	if len(o.NodeFeatures) > 0 {
		s = append(s, step{name: CaseNodeFeatures, path: PathTunnel, features: o.NodeFeatures, copied: true})
	}
	return s
}

// Run measures the cases o asks for on a throwaway testbed, which it
// removes before returning, whether it succeeds, fails or ctx ends. It
// first removes the leftovers of crashed runs. Missing privilege or a
// missing kernel feature is reported as detect.ErrPermission or
// detect.ErrNotSupported.
func Run(ctx context.Context, o Options) (Result, error) {
	return run(ctx, o, nil)
}

// alongside runs after each case on the same testbed, before the next
// case changes it; tests use it to measure the case with iperf3 too.
type alongside func(ctx context.Context, b *testbed.Bed, c Case, dst netip.Addr) error

func run(ctx context.Context, o Options, also alongside) (res Result, err error) {
	o, err = o.withDefaults()
	if err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	select {
	case running <- struct{}{}:
		defer func() { <-running }()
	case <-ctx.Done():
		return Result{}, fmt.Errorf("waiting for another bench to finish: %w", ctx.Err())
	}
	res = Result{Streams: o.Streams, Duration: o.Duration, Warmup: o.Warmup, Started: time.Now(), Mirrored: o.Mirrored}
	if res.Swept, err = testbed.Sweep(o.Prefix); err != nil {
		return res, fmt.Errorf("removing leftovers of earlier runs: %w", err)
	}
	if len(res.Swept) > 0 {
		o.Log.Info("removed leftovers of a crashed bench", "namespaces", res.Swept)
	}
	bed, err := testbed.New(o.bed())
	if err != nil {
		return res, fmt.Errorf("building the throwaway testbed: %w", err)
	}
	defer func() {
		if cerr := bed.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("removing the testbed: %w", cerr))
		}
	}()
	if err := describe(&res, bed); err != nil {
		return res, err
	}
	o.Log.Debug("testbed ready", "a", bed.A.NS, "b", bed.B.NS, "kind", res.Kind, "tunnel", res.Tunnel, "mtu", res.TunnelMTU)
	for _, s := range o.steps() {
		c, err := runStep(ctx, bed, o, s)
		if err != nil {
			return res, fmt.Errorf("case %s: %w", s.name, err)
		}
		o.Log.Debug("case measured", "case", c.Name, "bits_per_second", c.BitsPerSecond)
		res.Cases = append(res.Cases, c)
		if also != nil {
			if err := also(ctx, bed, c, dstOf(bed, s.path)); err != nil {
				return res, fmt.Errorf("case %s: %w", s.name, err)
			}
		}
	}
	res.summarize()
	return res, nil
}

// describe records what the testbed was really built with.
func describe(r *Result, b *testbed.Bed) error {
	r.Kind, r.Tunnel = b.Kind, b.A.Tunnel
	nl := b.A.Netlink()
	for _, d := range []struct {
		name string
		mtu  *int
	}{{b.A.Tunnel, &r.TunnelMTU}, {b.A.Underlay, &r.UnderlayMTU}} {
		l, err := nl.LinkByName(d.name)
		if err != nil {
			return fmt.Errorf("reading %s in %s: %w", d.name, b.A.NS, err)
		}
		*d.mtu = l.Attrs().MTU
	}
	return nil
}

func dstOf(b *testbed.Bed, path string) netip.Addr {
	if path == PathUnderlay {
		return b.B.UnderlayIP
	}
	return b.B.TunnelIP
}

// runStep sets the tunnel up for s and measures it.
func runStep(ctx context.Context, b *testbed.Bed, o Options, s step) (Case, error) {
	var feats map[string]bool
	if s.path == PathTunnel {
		if err := setFeatures(b, o, s); err != nil {
			return Case{}, err
		}
		all, err := b.A.Features(b.A.Tunnel)
		if err != nil {
			return Case{}, err
		}
		feats = watched(all)
	}
	f := flow{from: b.A, to: b.B, dst: dstOf(b, s.path), streams: o.Streams, warmup: o.Warmup, duration: o.Duration}
	n, elapsed, err := f.measure(ctx)
	if err != nil {
		return Case{}, err
	}
	c := newCase(s.name, s.path, n, elapsed)
	c.Features = feats
	return c, nil
}

// setFeatures sets s's features on both tunnel ends. For the node's
// copied set, features the throwaway device lacks or the node's driver
// holds fixed are skipped, and a feature this kernel will not change is
// logged and left, since the case then measures what the node's settings
// come to here.
func setFeatures(b *testbed.Bed, o Options, s step) error {
	for _, side := range b.Sides() {
		apply := s.features
		if s.copied {
			have, err := side.Features(side.Tunnel)
			if err != nil {
				return err
			}
			apply = map[string]bool{}
			for name, on := range s.features {
				if _, ok := have[name]; ok && !slices.Contains(o.NodeFixed, name) {
					apply[name] = on
				}
			}
		}
		if len(apply) == 0 {
			continue
		}
		err := side.SetFeatures(side.Tunnel, apply)
		if s.copied && errors.Is(err, detect.ErrNotSupported) {
			o.Log.Warn("the throwaway tunnel kept some features of its own", "err", err)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// watched keeps the features a snapshot keeps.
func watched(all map[string]bool) map[string]bool {
	out := make(map[string]bool, len(detect.WatchedFeatures))
	for _, name := range detect.WatchedFeatures {
		if on, ok := all[name]; ok {
			out[name] = on
		}
	}
	return out
}
