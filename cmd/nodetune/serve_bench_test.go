package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// The exporters the serve benchmark compares, each on the loopback of one
// testbed namespace with a VXLAN tunnel (offload off, so nodetune has a
// finding to export).
const (
	benchNodetune     = "127.0.0.1:9848"
	benchNodeExporter = "127.0.0.1:9100"
	// benchNodetuneCycles is the nodetune that probes every cycleInterval.
	benchNodetuneCycles = "127.0.0.1:9849"
	// scrapers is how many clients scrape at once.
	scrapers = 50
	// cycleInterval is nodetune's probe interval while CPU per cycle is
	// measured.
	cycleInterval = 200 * time.Millisecond
)

// nodeExporterCollectors are the node_exporter collectors that read what
// nodetune reads.
var nodeExporterCollectors = []string{"softirqs", "softnet", "conntrack", "stat", "cpu", "ethtool", "netdev"}

// benchClient is a keep-alive HTTP client whose connections are made in
// side's namespace, one idle connection per scraper.
func benchClient(side *testbed.Side) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: scrapers,
			DialContext:         side.DialContext,
		},
	}
}

// cpuNanos is the CPU time all of pid's threads have used, from schedstat.
func cpuNanos(b *testing.B, pid int) int64 {
	b.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		b.Fatalf("reading schedstat of %d: %v", pid, err)
	}
	var sum int64
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(raw))
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			b.Fatalf("%s: %q", t, raw)
		}
		sum += n
	}
	return sum
}

// rssBytes is pid's resident set size.
func rssBytes(b testing.TB, pid int) float64 { return statusBytes(b, pid, "VmRSS") }

// statusBytes is one of the memory sizes of /proc/PID/status, in bytes:
// VmRSS, or its parts RssAnon (heap, stacks) and RssFile (mapped pages of
// the binary).
func statusBytes(b testing.TB, pid int, field string) float64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func scrapeOnce(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// BenchmarkServeVsNodeExporter runs nodetune serve and node_exporter (with
// the collectors that read what nodetune reads) side by side in one testbed
// namespace and reports, for each: resident memory at idle (and nodetune's
// as a ratio of node_exporter's), scrape latency median and p99 under 50
// concurrent scrapers, CPU per scrape, resident memory after the scrapes,
// and, for nodetune, CPU per probe cycle. Goal: nodetune at or below
// node_exporter on memory and scrape latency.
func BenchmarkServeVsNodeExporter(b *testing.B) {
	privtest.Root(b)
	nodeExporter := privtest.Tool(b, "node_exporter")
	bin := nodetuneBinary(b)
	bed := testbedtest.New(b, testbed.Options{TunnelName: "vxlan.calico"})
	side := bed.A
	if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		b.Fatal(err)
	}
	// As shipped: the default probe interval. The cycle benchmark below
	// starts one of its own that probes every cycleInterval.
	nt := startIn(b, side.NS, bin, "serve", "--web.listen-address="+benchNodetune, "--kube-proxy.url=", "--log.level=warn")
	args := []string{nodeExporter, "--web.listen-address=" + benchNodeExporter, "--collector.disable-defaults", "--web.max-requests=0", "--log.level=warn"}
	for _, c := range nodeExporterCollectors {
		args = append(args, "--collector."+c)
	}
	ne := startIn(b, side.NS, args...)
	client := benchClient(side)
	targets := []struct {
		name string
		url  string
		pid  int
	}{
		{"nodetune", "http://" + benchNodetune + "/metrics", nt.cmd.Process.Pid},
		{"node_exporter", "http://" + benchNodeExporter + "/metrics", ne.cmd.Process.Pid},
	}
	for _, tg := range targets {
		eventually(b, 10*time.Second, tg.name+" answers", func() error { return scrapeOnce(client, tg.url) })
		for range 20 { // warm up: connections, buffers, the first snapshots
			if err := scrapeOnce(client, tg.url); err != nil {
				b.Fatal(err)
			}
		}
	}

	// Idle: both have answered their warm-up scrapes and nodetune probes
	// every cycleInterval; nothing scrapes for a second. Most of either
	// process's resident memory is its binary's mapped pages, so this is
	// where the size of what each links shows (docs/serve.md, "Footprint").
	b.Run("idle", func(b *testing.B) {
		for b.Loop() {
			time.Sleep(100 * time.Millisecond)
		}
		nt, ne := rssBytes(b, targets[0].pid), rssBytes(b, targets[1].pid)
		b.ReportMetric(nt/(1<<20), "nodetune-rss-MiB")
		b.ReportMetric(ne/(1<<20), "node_exporter-rss-MiB")
		b.ReportMetric(nt/ne, "rss-ratio")
		for _, tg := range targets {
			b.ReportMetric(statusBytes(b, tg.pid, "RssFile")/(1<<20), tg.name+"-file-MiB")
		}
	})

	for _, tg := range targets {
		b.Run("scrape/"+tg.name, func(b *testing.B) {
			var mu sync.Mutex
			var lat []time.Duration
			cpu0 := cpuNanos(b, tg.pid)
			b.SetParallelism(scrapers / max(1, runtimeProcs()))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					start := time.Now()
					if err := scrapeOnce(client, tg.url); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			cpu := cpuNanos(b, tg.pid) - cpu0
			slices.Sort(lat)
			if len(lat) == 0 {
				b.Fatal("no scrape succeeded")
			}
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(cpu)/float64(len(lat))/1e6, "cpu-ms/scrape")
			b.ReportMetric(rssBytes(b, tg.pid)/(1<<20), "rss-MiB")
		})
	}

	// nodetune probes on its own every cycleInterval, scraped or not: its
	// CPU over whole intervals, with no scrapes, is its CPU per cycle.
	b.Run("cycle/nodetune", func(b *testing.B) {
		fast := startIn(b, side.NS, bin, "serve", "--web.listen-address="+benchNodetuneCycles, "--probe.interval="+cycleInterval.String(),
			"--probe.window=100ms", "--kube-proxy.url=", "--log.level=warn")
		eventually(b, 10*time.Second, "nodetune answers", func() error {
			return scrapeOnce(client, "http://"+benchNodetuneCycles+"/metrics")
		})
		pid := fast.cmd.Process.Pid
		cpu0, start := cpuNanos(b, pid), time.Now()
		for b.Loop() {
			time.Sleep(cycleInterval)
		}
		cycles := time.Since(start).Seconds() / cycleInterval.Seconds()
		b.ReportMetric(float64(cpuNanos(b, pid)-cpu0)/cycles/1e6, "cpu-ms/cycle")
		b.ReportMetric(rssBytes(b, pid)/(1<<20), "rss-MiB")
	})
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
