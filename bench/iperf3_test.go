package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/testbed"

	"github.com/nodetune/nodetune/detect"
)

// iperf3Result is the part of `iperf3 -J` output the comparison reads.
type iperf3Result struct {
	End struct {
		SumReceived struct {
			Seconds       float64 `json:"seconds"`
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// parseIperf3 reads the receiver's throughput from `iperf3 -J` output.
func parseIperf3(r io.Reader) (bps float64, err error) {
	var res iperf3Result
	if err := json.NewDecoder(r).Decode(&res); err != nil {
		return 0, fmt.Errorf("parsing iperf3 -J output: %w", err)
	}
	if res.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", res.Error)
	}
	s := res.End.SumReceived
	if s.Seconds <= 0 || s.BitsPerSecond <= 0 || math.IsInf(s.BitsPerSecond, 0) || math.IsNaN(s.BitsPerSecond) {
		return 0, fmt.Errorf("iperf3 -J output has no receiver sum")
	}
	return s.BitsPerSecond, nil
}

// iperf3Case measures dst from side A to side B of bed with iperf3, run
// under `ip netns exec` with the same duration, warm-up and streams.
func iperf3Case(ctx context.Context, ip string, bed *testbed.Bed, dst netip.Addr, o Options) (float64, error) {
	const port = "5201"
	srv := exec.CommandContext(ctx, ip, "netns", "exec", bed.B.NS, "iperf3", "-s", "-1", "-B", dst.String(), "-p", port)
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		return 0, fmt.Errorf("starting the iperf3 server: %w", err)
	}
	defer func() {
		_ = srv.Process.Kill() // the server we started; it exits by itself after one test
		_ = srv.Wait()
	}()
	args := []string{"netns", "exec", bed.A.NS, "iperf3", "-J", "-c", dst.String(), "-p", port,
		"-t", strconv.Itoa(int(o.Duration.Seconds())), "-P", strconv.Itoa(o.Streams)}
	if w := int(o.Warmup.Seconds()); w > 0 {
		args = append(args, "-O", strconv.Itoa(w))
	}
	var lastErr error
	for range 50 { // the server needs a moment to listen
		out, err := exec.CommandContext(ctx, ip, args...).Output()
		bps, perr := parseIperf3(bytes.NewReader(out))
		if perr == nil {
			return bps, nil
		}
		lastErr = errors.Join(perr, err)
		if !strings.Contains(perr.Error(), "unable to connect") {
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("running the iperf3 client: %w (server said: %s)", lastErr, strings.TrimSpace(srvOut.String()))
}

// envInt reads a positive integer setting from the environment.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkAgainstIperf3 measures each case with nodetune's in-process
// test and with iperf3 on the same testbed, alternating between them for a
// few rounds so that other load on the machine hits both alike, prints
// the medians and fails if they differ by more than 20%.
// NODETUNE_BENCH_SECONDS (default 2), NODETUNE_BENCH_STREAMS (default 1)
// and NODETUNE_BENCH_ROUNDS (default 3) change the run;
// hack/bench-iperf3.sh runs it.
func BenchmarkAgainstIperf3(b *testing.B) {
	privtest.Root(b)
	ip := privtest.Tool(b, "ip")
	privtest.Tool(b, "iperf3")
	o := Options{
		Prefix:   "ntbiperf",
		Duration: time.Duration(envInt("NODETUNE_BENCH_SECONDS", 2)) * time.Second,
		Warmup:   time.Second,
		Streams:  envInt("NODETUNE_BENCH_STREAMS", 1),
	}
	rounds := envInt("NODETUNE_BENCH_ROUNDS", 3)
	type row struct {
		name         string
		ours, iperf3 []float64
	}
	for b.Loop() {
		var rows []row
		_, err := run(b.Context(), o, func(ctx context.Context, bed *testbed.Bed, c Case, dst netip.Addr) error {
			r := row{name: c.Name, ours: []float64{c.BitsPerSecond}}
			for i := range rounds {
				bps, err := iperf3Case(ctx, ip, bed, dst, o)
				if err != nil {
					return err
				}
				r.iperf3 = append(r.iperf3, bps)
				if i == rounds-1 {
					break // the run measured ours once before the first iperf3
				}
				f := flow{from: bed.A, to: bed.B, dst: dst, streams: o.Streams, warmup: o.Warmup, duration: o.Duration}
				n, elapsed, err := f.measure(ctx)
				if err != nil {
					return err
				}
				r.ours = append(r.ours, newCase(c.Name, c.Path, n, elapsed).BitsPerSecond)
			}
			rows = append(rows, r)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		fmt.Printf("\n%d rounds of %s per case and tool, %d stream(s), medians:\n\n", rounds, o.Duration, o.Streams)
		fmt.Printf("| case | nodetune bench | iperf3 | nodetune/iperf3 |\n|---|---:|---:|---:|\n")
		for _, r := range rows {
			ours, theirs := median(r.ours), median(r.iperf3)
			ratio := ours / theirs
			fmt.Printf("| %s | %s | %s | %.2f |\n", r.name, detect.Rate(ours), detect.Rate(theirs), ratio)
			b.ReportMetric(ours/1e9, r.name+"-Gbit/s")
			b.ReportMetric(theirs/1e9, r.name+"-iperf3-Gbit/s")
			if math.Abs(ratio-1) > 0.20 {
				b.Errorf("%s: nodetune measured %s, iperf3 %s (medians of %s and %s): more than 20%% apart",
					r.name, detect.Rate(ours), detect.Rate(theirs), rates(r.ours), rates(r.iperf3))
			}
		}
	}
}

// median is the middle value of xs (the mean of the two middle ones).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func rates(xs []float64) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = detect.Rate(x)
	}
	return strings.Join(out, ", ")
}

func TestParseIperf3(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    float64
		wantErr string
	}{
		{in: `{"start":{},"end":{"sum_sent":{"bits_per_second":3.1e10},"sum_received":{"seconds":2.0001,"bytes":7.6e9,"bits_per_second":3.04e10}}}`, want: 3.04e10},
		{in: `{"start":{},"intervals":[],"end":{},"error":"unable to connect to server: Connection refused"}`, wantErr: "unable to connect"},
		{in: `{"end":{"sum_received":{"seconds":0,"bits_per_second":0}}}`, wantErr: "no receiver sum"},
		{in: `iperf3: error`, wantErr: "parsing iperf3"},
		{in: ``, wantErr: "parsing iperf3"},
	} {
		got, err := parseIperf3(strings.NewReader(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseIperf3(%.40q): error %v, want one saying %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseIperf3(%.40q) = %g, %v; want %g", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseIperf3(f *testing.F) {
	f.Add(`{"end":{"sum_received":{"seconds":2,"bytes":1e9,"bits_per_second":4e9}}}`)
	f.Add(`{"error":"x"}`)
	f.Add(`{"end":{"sum_received":{"seconds":1e308,"bits_per_second":-1}}}`)
	f.Fuzz(func(t *testing.T, in string) {
		bps, err := parseIperf3(strings.NewReader(in))
		if err == nil && !(bps > 0) {
			t.Fatalf("parseIperf3(%q) = %g without error", in, bps)
		}
	})
}
