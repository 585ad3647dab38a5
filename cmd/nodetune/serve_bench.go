package main

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/nodetune/nodetune/bench"
	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/exporter"
)

// benchRunner is serve's on-demand benchmark (POST /bench): nodetune bench
// on a throwaway testbed that mirrors the node's tunnel as the last
// snapshot saw it, each case measured for duration.
func benchRunner(exp *exporter.Exporter, duration time.Duration, log *slog.Logger) daemon.BenchRunner {
	return func(ctx context.Context) (daemon.BenchResult, error) {
		o := bench.Options{Duration: duration, Log: log}
		if st := exp.State(); st != nil {
			if t, ok := bench.NodeTunnel(st.Snapshot.Tunnels, ""); ok {
				o.Mirror(t)
			}
		}
		res, err := bench.Run(ctx, o)
		if err != nil {
			return daemon.BenchResult{}, err
		}
		out := daemon.BenchResult{Run: res}
		byCase := res.ThroughputByCase()
		for _, name := range slices.Sorted(maps.Keys(byCase)) {
			out.Paths = append(out.Paths, daemon.Throughput{Path: name, BitsPerSecond: byCase[name]})
		}
		if loss, ok := res.Loss(); ok && loss > 0 {
			out.LossRatio = loss
		}
		log.Info("on-demand benchmark done", "cases", len(res.Cases), "measured_loss", out.LossRatio)
		return out, nil
	}
}
