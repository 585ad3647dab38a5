package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodetune/nodetune/bench"
	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/testbed"
)

func init() { subcommands = append(subcommands, newBenchCmd) }

// benchFlags are the flags of `nodetune bench`.
type benchFlags struct {
	output       string
	duration     time.Duration
	warmup       time.Duration
	streams      int
	kind         string
	device       string
	mtu          int
	mirror       bool
	nodeFeatures bool
	peer         peerBenchFlags
}

func newBenchCmd(g *globals) *cobra.Command {
	f := benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure what the tunnel and its tx checksum offload cost on this kernel",
		Long: "bench builds two throwaway network namespaces joined by a veth pair, with a tunnel of this node's kind\n" +
			"(VXLAN unless the node has another; --kind) and MTU on top, and measures TCP throughput between them:\n" +
			"over the underlay alone, through the tunnel with tx checksum offload on, with it off, and with this\n" +
			"node's own tunnel features. It never touches the node's devices, removes everything it built (also\n" +
			"when interrupted), and first removes what an earlier crashed run left behind. It needs root.\n\n" +
			"With --peer HOST[:PORT] it measures instead between this node and another node whose nodetune serve\n" +
			"runs with --peer.enable: TCP between the underlay addresses (host), through the CNI tunnel (tunnel),\n" +
			"and through a temporary tunnel of the CNI's kind and MTU with tx checksum offload on and off on the\n" +
			"sending end (tunnel-offload-on, tunnel-offload-off), naming what limited each case.\n\n" +
			"Exit status: 0 measured, 3 bad usage, 4 bench could not run.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.peer.addr != "" {
				return runPeerBench(cmd, g, f) // bench_peer.go
			}
			o, err := f.options(g, g.nodeTunnels)
			if err != nil {
				return err
			}
			res, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return &exitError{code: exitFailure, err: explainBench(cmd.Context(), o.Kind, err)}
			}
			return writeBenchResult(cmd.OutOrStdout(), f.output, res, func(w io.Writer) error { return bench.WriteText(w, res) })
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	fs.DurationVar(&f.duration, "duration", 2*time.Second, "how long to measure each case")
	fs.DurationVar(&f.warmup, "warmup", 300*time.Millisecond, "how long each case runs before measuring starts")
	fs.IntVar(&f.streams, "streams", 1, "parallel TCP streams per case")
	fs.StringVar(&f.kind, "kind", "", "tunnel kind: vxlan, geneve or ipip (default: this node's tunnel's kind, else vxlan)")
	fs.StringVar(&f.device, "device", "", "node tunnel whose kind, MTU and features to copy (default: the first IPv4 tunnel that is up)")
	fs.IntVar(&f.mtu, "mtu", 0, "throwaway tunnel MTU (default: the node tunnel's, else the underlay's minus the overhead)")
	fs.BoolVar(&f.mirror, "mirror", true, "copy this node's tunnel settings onto the throwaway tunnel")
	fs.BoolVar(&f.nodeFeatures, "node-features", true, "also measure with this node's tunnel offload features")
	f.peer.register(fs)
	return cmd
}

// options turns the flags, and the node's tunnel when mirroring, into a
// bench run.
func (f benchFlags) options(g *globals, tunnels func() (detect.Tunnels, error)) (bench.Options, error) {
	switch {
	case f.output != "text" && f.output != "json":
		return bench.Options{}, fmt.Errorf("-o: want text or json, got %q", f.output)
	case f.duration <= 0 || f.warmup < 0:
		return bench.Options{}, fmt.Errorf("--duration must be positive and --warmup not negative")
	case f.streams < 1 || f.streams > 128:
		return bench.Options{}, fmt.Errorf("--streams: want 1 to 128, got %d", f.streams)
	case f.kind != "" && testbed.Overhead(f.kind) == 0:
		return bench.Options{}, fmt.Errorf("--kind: want vxlan, geneve or ipip, got %q", f.kind)
	case f.mtu != 0 && (f.mtu < 576 || f.mtu > 65000):
		return bench.Options{}, fmt.Errorf("--mtu: want 576 to 65000, got %d", f.mtu)
	}
	o := bench.Options{Duration: f.duration, Warmup: f.warmup, Streams: f.streams, Log: g.log}
	if f.mirror {
		t, ok, err := f.nodeTunnel(g, tunnels)
		if err != nil {
			return o, err
		}
		if ok {
			o.Mirror(t)
			g.log.Debug("mirroring the node's tunnel", "device", t.Name, "kind", t.Kind, "mtu", o.TunnelMTU, "underlay_mtu", o.UnderlayMTU)
		}
		if !f.nodeFeatures {
			o.NodeFeatures, o.NodeFixed = nil, nil
		}
	}
	if f.kind != "" && f.kind != o.Kind {
		// Another kind than the node's: only its defaults make sense.
		o = bench.Options{Kind: f.kind, Duration: f.duration, Warmup: f.warmup, Streams: f.streams, Log: g.log}
	}
	if f.mtu != 0 {
		o.TunnelMTU = f.mtu
		kind := o.Kind
		if kind == "" {
			kind = detect.KindVXLAN
		}
		o.UnderlayMTU = max(o.UnderlayMTU, f.mtu+testbed.Overhead(kind))
	}
	return o, nil
}

// nodeTunnel finds the node tunnel to mirror. A --device that is not there
// is a usage error; a node whose links cannot be read is mirrored by none.
func (f benchFlags) nodeTunnel(g *globals, tunnels func() (detect.Tunnels, error)) (detect.Tunnel, bool, error) {
	ts, err := tunnels()
	if err == nil && ts.Err.Failed() {
		err = ts.Err
	}
	if err != nil {
		g.log.Warn("cannot read this node's tunnels; benching the defaults", "err", err)
		return detect.Tunnel{}, false, nil
	}
	t, ok := bench.NodeTunnel(ts, f.device)
	if !ok && f.device != "" {
		return t, false, fmt.Errorf("--device: this node has no tunnel named %q", f.device)
	}
	if !ok {
		g.log.Debug("this node has no tunnel; benching a default VXLAN")
	}
	return t, ok, nil
}

// nodeTunnels reads the node's tunnels through the real netlink and ethtool.
func (g *globals) nodeTunnels() (detect.Tunnels, error) {
	h, closeHost, err := g.host()
	if err != nil {
		return detect.Tunnels{}, err
	}
	defer closeHost()
	return h.Tunnels(), nil
}

// explainBench says what a failed bench lacked, in the user's terms.
func explainBench(ctx context.Context, kind string, err error) error {
	if kind == "" {
		kind = detect.KindVXLAN
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("bench interrupted; its namespaces were removed: %w", err)
	case errors.Is(err, detect.ErrPermission):
		return fmt.Errorf("bench cannot create its throwaway namespaces and devices without privilege: %w", err)
	case errors.Is(err, detect.ErrNotSupported):
		return fmt.Errorf("this kernel lacks what bench needs (network namespaces, veth, %s devices, ethtool features): %w", kind, err)
	}
	return fmt.Errorf("bench failed: %w", err)
}

// writeBenchResult prints a bench result as indented JSON, or as text
// through text.
func writeBenchResult(out io.Writer, output string, res any, text func(io.Writer) error) error {
	var err error
	if output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	} else {
		err = text(out)
	}
	if err != nil {
		return &exitError{code: exitFailure, err: fmt.Errorf("writing the result: %w", err)}
	}
	return nil
}
