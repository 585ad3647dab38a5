package daemon

import (
	"context"
	"errors"
)

// ErrBusy is what Bench returns while another benchmark runs.
var ErrBusy = errors.New("a benchmark is already running")

// BenchResult is what an on-demand benchmark measured on this node.
type BenchResult struct {
	// Paths are the measured throughputs, such as tunnel traffic with
	// offload on and with it off.
	Paths []Throughput `json:"paths"`
	// LossRatio is the share of throughput measured lost with tx checksum
	// offload off; 0 when the benchmark could not tell.
	LossRatio float64 `json:"loss_ratio"`
	// Run is the benchmark's own account of the run, for the HTTP answer.
	Run any `json:"run,omitempty"`
}

// BenchRunner runs the throughput benchmark.
type BenchRunner func(ctx context.Context) (BenchResult, error)

// measurement is the last benchmark's result, as the cycles use it.
type measurement struct {
	paths []Throughput
	loss  float64
}

func (d *Daemon) measurement() measurement {
	d.measuredMu.Lock()
	defer d.measuredMu.Unlock()
	return d.measured
}

// Bench runs the on-demand benchmark, one at a time, and makes its figures
// the Throughput of the cycles it publishes (the exporter's
// nodetune_measured_throughput_bps) and the loss the tunnel-tx-checksum-off
// finding quotes. It returns ErrBusy while another benchmark runs.
func (d *Daemon) Bench(ctx context.Context) (BenchResult, error) {
	if d.opt.Bench == nil {
		return BenchResult{}, errors.New("daemon: Bench called without Options.Bench")
	}
	if !d.benchMu.TryLock() {
		return BenchResult{}, ErrBusy
	}
	defer d.benchMu.Unlock()
	r, err := d.opt.Bench(ctx)
	if err != nil {
		return r, err
	}
	d.measuredMu.Lock()
	d.measured = measurement{paths: r.Paths, loss: r.LossRatio}
	d.measuredMu.Unlock()
	select {
	case d.kick <- struct{}{}: // re-judge the last snapshot with the new figures
	default:
	}
	return r, nil
}
