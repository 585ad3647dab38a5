package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/bench"
	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// Addresses of the benchmark's copy of the temporary tunnel, for iperf3.
const (
	replicaName = "ntbrep0"
	replicaA    = "169.254.111.1"
	replicaB    = "169.254.111.2"
)

// replicateTempTunnel builds, in both namespaces, a tunnel like the one
// bench --peer makes for its offload cases (the CNI's kind and MTU, its
// own VNI and port, over the same underlay), so that iperf3 can measure
// that path too; nodetune's own is gone when its run ends.
func replicateTempTunnel(b *testing.B, bed *testbed.Bed) {
	b.Helper()
	for _, s := range []struct {
		side        *testbed.Side
		addr, local string
		remote      string
	}{{bed.A, replicaA, bed.A.UnderlayIP.String(), bed.B.UnderlayIP.String()}, {bed.B, replicaB, bed.B.UnderlayIP.String(), bed.A.UnderlayIP.String()}} {
		for _, args := range [][]string{
			{"link", "add", replicaName, "mtu", "1450", "type", "vxlan", "id", strconv.Itoa(bench.DefaultPeerVNI),
				"dstport", strconv.Itoa(bench.DefaultPeerTunnelPort), "local", s.local, "remote", s.remote, "dev", testbed.UnderlayName},
			{"addr", "add", s.addr + "/30", "dev", replicaName},
			{"link", "set", replicaName, "up"},
		} {
			if out, err := exec.Command("ip", append([]string{"-n", s.side.NS}, args...)...).CombinedOutput(); err != nil {
				b.Fatalf("ip %v: %v\n%s", args, err, out)
			}
		}
	}
}

// removeReplica removes the replica, so that nodetune's next run can make
// its own with the same VNI and port.
func removeReplica(b *testing.B, bed *testbed.Bed) {
	b.Helper()
	for _, s := range bed.Sides() {
		if out, err := exec.Command("ip", "-n", s.NS, "link", "del", replicaName).CombinedOutput(); err != nil {
			b.Fatalf("removing the replica: %v\n%s", err, out)
		}
	}
}

// iperf3Peer measures one case with iperf3 between the bed's nodes: from
// A to dst on B for send, from B to A (-R) for receive.
func iperf3Peer(b *testing.B, bed *testbed.Bed, dst, dir string, streams int, secs int) float64 {
	b.Helper()
	iperf3 := privtest.Tool(b, "iperf3")
	const port = "5399"
	server := exec.Command("ip", "netns", "exec", bed.B.NS, iperf3, "-s", "-1", "-B", dst, "-p", port)
	if err := server.Start(); err != nil {
		b.Fatalf("starting the iperf3 server: %v", err)
	}
	defer func() { _ = server.Process.Kill(); _ = server.Wait() }()
	args := []string{"netns", "exec", bed.A.NS, iperf3, "-J", "-c", dst, "-p", port, "-t", strconv.Itoa(secs), "-O", "1", "-P", strconv.Itoa(streams)}
	if dir == detect.PeerReceive {
		args = append(args, "-R")
	}
	var out []byte
	var err error
	for range 50 { // until the server listens
		out, err = exec.Command("ip", args...).Output()
		var r iperf3Result
		if jerr := json.Unmarshal(out, &r); jerr == nil && r.Error == "" && err == nil {
			return r.End.SumReceived.BitsPerSecond
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("iperf3 client: %v\n%s", err, out)
	return 0
}

// BenchmarkPeerVsIperf3 measures the two testbed nodes with nodetune bench
// --peer (the responder in B, the measurer in A), then every case with
// iperf3 on the same path and settings, for a few rounds, and wants the
// medians within 20% of each other per case and direction.
//
//	make bench   (NODETUNE_BENCH_SECONDS=2, NODETUNE_BENCH_STREAMS=1, NODETUNE_BENCH_ROUNDS=3)
func BenchmarkPeerVsIperf3(b *testing.B) {
	privtest.Root(b)
	privtest.Tool(b, "iperf3")
	secs, streams, rounds := envInt("NODETUNE_BENCH_SECONDS", 2), envInt("NODETUNE_BENCH_STREAMS", 1), envInt("NODETUNE_BENCH_ROUNDS", 3)
	bed := testbedtest.New(b, testbed.Options{})
	token := writeToken(b, "bench-token")
	startResponder(b, bed.A, bed.B, token, "--log.level=warn")
	type key struct{ name, dir string }
	var order []key
	for _, name := range []string{detect.PeerCaseHost, detect.PeerCaseTunnel, detect.PeerCaseOffloadOn, detect.PeerCaseOffloadOff} {
		for _, dir := range []string{detect.PeerSend, detect.PeerReceive} {
			order = append(order, key{name, dir})
		}
	}
	ours, theirs := map[key][]float64{}, map[key][]float64{}
	// One case at a time, nodetune then iperf3, round after round, so
	// that other load on the machine falls on both alike.
	for b.Loop() {
		for range rounds {
			for _, k := range order {
				out, err := exec.Command("ip", "netns", "exec", bed.A.NS, nodetuneBinary(b), "bench", "--peer", bed.B.UnderlayIP.String()+":"+peerPort,
					"--peer.token-file", token, "-o", "json", "--duration", strconv.Itoa(secs)+"s", "--warmup", "1s",
					"--streams", strconv.Itoa(streams), "--peer.cases", k.name, "--direction", k.dir,
					"--kube-proxy.url=", "--log.level=warn").Output()
				var res bench.PeerResult
				if err != nil || json.Unmarshal(out, &res) != nil || len(res.Cases) != 1 {
					b.Fatalf("bench --peer: %v\n%s", err, out)
				}
				if c := res.Cases[0]; c.Err.Failed() {
					b.Fatalf("case %s %s: %v", k.name, k.dir, c.Err)
				} else {
					ours[k] = append(ours[k], c.BitsPerSecond)
				}
				dst := map[string]string{detect.PeerCaseHost: bed.B.UnderlayIP.String(), detect.PeerCaseTunnel: bed.B.TunnelIP.String(),
					detect.PeerCaseOffloadOn: replicaB, detect.PeerCaseOffloadOff: replicaB}[k.name]
				offload := k.name == detect.PeerCaseOffloadOn || k.name == detect.PeerCaseOffloadOff
				if offload {
					replicateTempTunnel(b, bed)
					sender := bed.A
					if k.dir == detect.PeerReceive {
						sender = bed.B
					}
					if err := sender.SetFeatures(replicaName, map[string]bool{detect.FeatureTxChecksumGeneric: k.name == detect.PeerCaseOffloadOn}); err != nil {
						b.Fatal(err)
					}
				}
				theirs[k] = append(theirs[k], iperf3Peer(b, bed, dst, k.dir, streams, secs))
				if offload {
					removeReplica(b, bed)
				}
			}
		}
	}
	fmt.Printf("\n%d rounds of %ds per case and tool, %d streams, medians:\n\n", rounds, secs, streams)
	fmt.Printf("| case | direction | nodetune bench --peer | iperf3 | nodetune/iperf3 |\n|---|---|---:|---:|---:|\n")
	for _, k := range order {
		o, i := median(ours[k]), median(theirs[k])
		ratio := o / i
		fmt.Printf("| %s | %s | %s | %s | %.2f |\n", k.name, k.dir, detect.Rate(o), detect.Rate(i), ratio)
		b.ReportMetric(o/1e9, k.name+"-"+k.dir+"-Gbit/s")
		b.ReportMetric(i/1e9, k.name+"-"+k.dir+"-iperf3-Gbit/s")
		if math.Abs(ratio-1) > 0.20 {
			b.Errorf("%s %s: nodetune %s, iperf3 %s (rounds: %s; %s): more than 20%% apart", k.name, k.dir, detect.Rate(o), detect.Rate(i),
				rateList(ours[k]), rateList(theirs[k]))
		}
	}
}

func rateList(xs []float64) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = detect.Rate(x)
	}
	return strings.Join(out, ", ")
}

// BenchmarkPeerResponderIdle compares an idle serve with the responder on
// against one without it, side by side on the same node: CPU over the
// idle time and resident memory. The responder does nothing until asked,
// so it must cost (almost) nothing. Both probe every 10 s (startResponder
// sets that), and each round idles for three cycles.
func BenchmarkPeerResponderIdle(b *testing.B) {
	privtest.Root(b)
	bin := nodetuneBinary(b)
	bed := testbedtest.New(b, testbed.Options{})
	side := bed.B
	token := writeToken(b, "idle-token")
	common := []string{"serve", "--kube-proxy.url=", "--log.level=warn", "--state-dir", b.TempDir(), "--probe.interval", "10s"}
	plain := startIn(b, side.NS, append(append([]string{bin}, common...), "--web.listen-address=127.0.0.1:9850")...)
	peer := startResponder(b, bed.A, side, token, "--log.level=warn")
	time.Sleep(3 * time.Second) // both past their first probe cycle
	pids := map[string]int{"serve": plain.cmd.Process.Pid, "serve --peer.enable": peer.cmd.Process.Pid}
	cpu0 := map[string]int64{}
	for name, pid := range pids {
		cpu0[name] = cpuNanos(b, pid)
	}
	start := time.Now()
	for b.Loop() {
		time.Sleep(30 * time.Second) // three probe cycles of each
	}
	idle := time.Since(start).Seconds()
	fmt.Printf("\nidle for %.0f s:\n\n| process | CPU ms/s | RSS MiB |\n|---|---:|---:|\n", idle)
	cpu, rss := map[string]float64{}, map[string]float64{}
	for _, name := range []string{"serve", "serve --peer.enable"} {
		cpu[name] = float64(cpuNanos(b, pids[name])-cpu0[name]) / 1e6 / idle
		rss[name] = rssBytes(b, pids[name]) / (1 << 20)
		fmt.Printf("| %s | %.2f | %.1f |\n", name, cpu[name], rss[name])
	}
	b.ReportMetric(cpu["serve --peer.enable"], "peer-cpu-ms/s")
	b.ReportMetric(cpu["serve"], "serve-cpu-ms/s")
	b.ReportMetric(rss["serve --peer.enable"], "peer-rss-MiB")
	b.ReportMetric(rss["serve"], "serve-rss-MiB")
	if rss["serve --peer.enable"] > rss["serve"]*1.10+0.5 {
		b.Errorf("the idle responder holds %.1f MiB, serve alone %.1f MiB", rss["serve --peer.enable"], rss["serve"])
	}
	if cpu["serve --peer.enable"] > cpu["serve"]*1.25+0.2 {
		b.Errorf("the idle responder uses %.2f CPU ms/s, serve alone %.2f", cpu["serve --peer.enable"], cpu["serve"])
	}
}
