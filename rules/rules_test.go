package rules

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
)

// node returns a healthy snapshot that tests then spoil one fact at a time.
func node(release string) *detect.Snapshot {
	v, err := detect.ParseRelease(release)
	if err != nil {
		panic(err)
	}
	return &detect.Snapshot{
		Window: time.Second,
		Kernel: detect.Kernel{Release: release, Version: v},
		Memory: detect.Memory{TotalBytes: 16 << 30},
		Tunnels: detect.Tunnels{Devices: []detect.Tunnel{{
			Name: "vxlan0", Kind: detect.KindVXLAN, MTU: 1450, Port: 4789,
			// IPv4 without udpcsum: zero outer checksums, as flannel and
			// Calico create their devices
			OuterChecksum: &detect.OuterChecksum{},
			Features:      detect.Features{State: map[string]bool{detect.FeatureTxChecksumGeneric: true, detect.FeatureTSO: true}},
			Underlay:      &detect.Underlay{Name: "eth0", MTU: 1500, Source: "link", RxQueues: []detect.RxQueue{{Name: "rx-0", RPSCPUs: "0"}}},
		}}},
		// eth0 is a virtual device: one queue, no interrupts, RPS off.
		NICs: detect.NICs{Devices: []detect.NIC{{
			Name: "eth0", ChannelsErr: detect.Fail(fmt.Errorf("ethtool -l: %w", detect.ErrNotSupported)),
			RxQueues: []detect.RxQueue{{Name: "rx-0", RPSCPUs: "0"}},
		}}},
		CPU:       detect.CPU{PerCPU: []detect.CPUUsage{{CPU: 0, Idle: 0.9}, {CPU: 1, Idle: 0.9}}},
		Softnet:   detect.Softnet{MaxBacklog: 1000, Budget: 300},
		Conntrack: detect.Conntrack{Present: true, Count: 10, Max: 1000},
		KubeProxy: detect.KubeProxy{NATRules: -1, SyncSeconds: -1},
		CNI:       detect.CNI{Name: detect.CNINone},
	}
}

func offload(s *detect.Snapshot, on bool) *detect.Snapshot {
	s.Tunnels.Devices[0].Features.State[detect.FeatureTxChecksumGeneric] = on
	return s
}

// fired returns rule/subject/severity/auto of each finding, for comparing.
func fired(r Result) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, fmt.Sprintf("%s %s %s auto=%v", f.Rule, f.Subject, f.Severity, f.Fix.Auto))
	}
	return out
}

func uncheckedRules(r Result) []string {
	var out []string
	for _, u := range r.Unchecked {
		out = append(out, u.Rule)
	}
	return out
}

func TestRules(t *testing.T) {
	tests := []struct {
		name      string
		snap      func() *detect.Snapshot
		cfg       func(*Config)
		want      []string
		unchecked []string
	}{
		{name: "healthy node", snap: func() *detect.Snapshot { return node("6.1.0") }},
		{
			name: "offload off on a fixed kernel",
			snap: func() *detect.Snapshot { return offload(node("6.1.0"), false) },
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=true"},
		},
		{
			name: "offload off on an unfixed kernel is right",
			snap: func() *detect.Snapshot { return offload(node("5.4.40"), false) },
		},
		{
			name: "offload off on a stable kernel with the backport",
			snap: func() *detect.Snapshot { return offload(node("4.19.123"), false) },
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=true"},
		},
		{
			name: "offload off on a distribution kernel: not automatic",
			snap: func() *detect.Snapshot { return offload(node("4.18.0-553.el8_10.x86_64"), false) },
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=false"},
		},
		{
			name: "offload off while unattributed checksum errors rise: not automatic",
			snap: func() *detect.Snapshot { s := offload(node("6.1.0"), false); s.UDP.Delta = 3; return s },
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=false", "udp-checksum-errors udp warning auto=false"},
		},
		{
			name: "offload off while peers send bad tunnel packets: not automatic, peers named",
			snap: func() *detect.Snapshot { return badFrom(offload(node("6.1.0"), false), peer, 4789, "vxlan0") },
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=false", "udp-checksum-errors vxlan0 warning auto=false"},
		},
		{
			name: "offload off on an unfixed kernel, peers send bad tunnel packets: peers named",
			snap: func() *detect.Snapshot { return badFrom(offload(node("5.4.40"), false), peer, 4789, "vxlan0") },
			want: []string{"udp-checksum-errors vxlan0 warning auto=false"},
		},
		{
			name: "offload off, junk to another port: still automatic",
			snap: func() *detect.Snapshot { return badFrom(offload(node("6.1.0"), false), junk, 9999, "") },
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=true", "udp-checksum-errors udp info auto=false"},
		},
		{
			name: "offload off, errors since boot and one quiet window: not automatic",
			snap: func() *detect.Snapshot {
				s := offload(node("6.1.0"), false)
				s.UDP.InCsumErrors, s.UDP.QuietFor = 120000, time.Second
				return s
			},
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=false"},
		},
		{
			name: "offload off, errors since boot, quiet long enough: automatic",
			snap: func() *detect.Snapshot {
				s := offload(node("6.1.0"), false)
				s.UDP.InCsumErrors, s.UDP.QuietFor = 120000, detect.MinQuietForOffload
				return s
			},
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=true"},
		},
		{
			name: "offload off, IPv6 errors since boot and one quiet window: not automatic",
			snap: func() *detect.Snapshot {
				s := offload(node("6.1.0"), false)
				s.UDP.InCsumErrors6, s.UDP.QuietFor = 5, time.Second
				return s
			},
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=false"},
		},
		{
			name: "offload off with UDP counters unreadable: not automatic",
			snap: func() *detect.Snapshot {
				s := offload(node("6.1.0"), false)
				s.UDP.Err = detect.Fail(detect.ErrPermission)
				return s
			},
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=false"},
		},
		{
			name: "offload fixed off by the driver is not a finding",
			snap: func() *detect.Snapshot {
				s := offload(node("6.1.0"), false)
				s.Tunnels.Devices[0].Features.Fixed = []string{detect.FeatureTxChecksumGeneric}
				return s
			},
		},
		{
			name: "offload on an unfixed vanilla kernel",
			snap: func() *detect.Snapshot { return node("5.4.40") },
			want: []string{"tunnel-tx-checksum-unsafe vxlan0 warning auto=true"},
		},
		{
			name: "unattributed errors on a fixed kernel: no offload verdict",
			snap: func() *detect.Snapshot { s := node("6.1.0"); s.UDP.Delta = 9; return s },
			want: []string{"udp-checksum-errors udp warning auto=false"},
		},
		{
			name: "no CAP_NET_RAW: unattributed, nothing automatic",
			snap: func() *detect.Snapshot {
				s := node("5.4.0-150-generic")
				s.UDP.Delta = 3
				s.UDP.Capture = &detect.ChecksumCapture{Err: detect.Fail(fmt.Errorf("opening a packet socket: %w", detect.ErrPermission))}
				return s
			},
			want: []string{"udp-checksum-errors udp warning auto=false"},
		},
		{
			name: "three junk datagrams to an unrelated port: no offload verdict",
			snap: func() *detect.Snapshot { return badFrom(node("6.1.0"), junk, 9999, "") },
			want: []string{"udp-checksum-errors udp info auto=false"},
		},
		{
			name: "bad tunnel packets on a fixed kernel name the peer, not automatic",
			snap: func() *detect.Snapshot { return badFrom(node("6.1.0"), peer, 4789, "vxlan0") },
			want: []string{"tunnel-tx-checksum-unsafe vxlan0 critical auto=false"},
		},
		{
			name: "bad tunnel packets on an unfixed kernel: automatic",
			snap: func() *detect.Snapshot { return badFrom(node("5.4.40"), peer, 4789, "vxlan0") },
			want: []string{"tunnel-tx-checksum-unsafe vxlan0 critical auto=true"},
		},
		{
			name: "unfixed kernel, device sends real outer checksums: not exposed",
			snap: func() *detect.Snapshot {
				s := node("5.4.40")
				s.Tunnels.Devices[0].OuterChecksum.UDPCsum = true
				return s
			},
		},
		{
			name: "unfixed kernel, IPv6 device with real outer checksums: not exposed",
			snap: func() *detect.Snapshot {
				s := node("5.4.40")
				s.Tunnels.Devices[0].IPv6, s.Tunnels.Devices[0].MTU = true, 1430
				return s
			},
		},
		{
			name: "unfixed kernel, IPv6 device with udp6zerocsumtx: exposed",
			snap: func() *detect.Snapshot {
				s := node("5.4.40")
				s.Tunnels.Devices[0].IPv6, s.Tunnels.Devices[0].MTU = true, 1430
				s.Tunnels.Devices[0].OuterChecksum.ZeroCsum6Tx = true
				return s
			},
			want: []string{"tunnel-tx-checksum-unsafe vxlan0 warning auto=true"},
		},
		{
			name: "unfixed kernel, outer checksum settings unknown: not automatic",
			snap: func() *detect.Snapshot {
				s := node("5.4.40")
				s.Tunnels.Devices[0].OuterChecksum = nil
				return s
			},
			want: []string{"tunnel-tx-checksum-unsafe vxlan0 warning auto=false"},
		},
		{
			name: "ipip is not a UDP tunnel: no checksum bug",
			snap: func() *detect.Snapshot { s := node("5.4.40"); s.Tunnels.Devices[0].Kind = detect.KindIPIP; return s },
		},
		{
			name: "distribution kernel, offload on, no errors: fine",
			snap: func() *detect.Snapshot { return node("5.4.0-150-generic") },
		},
		{
			name: "distribution kernel, offload on, counters unreadable: unchecked",
			snap: func() *detect.Snapshot {
				s := node("5.4.0-150-generic")
				s.UDP.Err = detect.Fail(detect.ErrNotSupported)
				return s
			},
			unchecked: []string{"tunnel-tx-checksum-unsafe"},
		},
		{
			name: "Calico's device with Felix running",
			snap: func() *detect.Snapshot {
				s := offload(node("6.1.0"), false)
				s.Tunnels.Devices[0].Name = "vxlan.calico"
				s.CNI = detect.CNI{Name: detect.CNICalico, FelixRunning: true}
				return s
			},
			want: []string{"cni-owns-offload vxlan.calico warning auto=false", "tunnel-tx-checksum-off vxlan.calico warning auto=true"},
		},
		{
			name: "a udev rule re-applies offload off",
			snap: func() *detect.Snapshot {
				s := offload(node("6.1.0"), false)
				s.Ownership.OffloadFiles = []detect.OffloadFile{{Kind: detect.FileUdevRule, Path: "/etc/udev/rules.d/90-x.rules", Line: 1,
					Match: detect.DeviceMatch{Names: []string{"vxlan*"}}, Settings: []detect.FeatureSetting{{Feature: "tx"}}}}
				return s
			},
			want: []string{"cni-owns-offload vxlan0 warning auto=false", "tunnel-tx-checksum-off vxlan0 warning auto=true"},
		},
		{
			name: "a udev rule for another device",
			snap: func() *detect.Snapshot {
				s := offload(node("6.1.0"), false)
				s.Ownership.OffloadFiles = []detect.OffloadFile{{Kind: detect.FileUdevRule, Path: "/etc/udev/rules.d/90-x.rules", Line: 1,
					Match: detect.DeviceMatch{Names: []string{"eth*"}}, Settings: []detect.FeatureSetting{{Feature: "tx"}}}}
				return s
			},
			want: []string{"tunnel-tx-checksum-off vxlan0 warning auto=true"},
		},
		{
			name: "owner files unreadable",
			snap: func() *detect.Snapshot {
				s := offload(node("6.1.0"), false)
				s.Ownership.FilesErr = detect.Fail(fmt.Errorf("listing /etc/udev/rules.d: %w", detect.ErrPermission))
				return s
			},
			want:      []string{"tunnel-tx-checksum-off vxlan0 warning auto=true"},
			unchecked: []string{"cni-owns-offload"},
		},
		{
			name: "features unreadable",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.Tunnels.Devices[0].Features = detect.Features{Err: detect.Fail(errors.New("EPERM"))}
				return s
			},
			unchecked: []string{"tunnel-tx-checksum-off", "tunnel-tx-checksum-unsafe", "cni-owns-offload"},
		},
		{
			name: "tunnel list unreadable",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.Tunnels = detect.Tunnels{Err: detect.Fail(errors.New("netlink"))}
				return s
			},
			unchecked: []string{"tunnel-tx-checksum-off", "tunnel-tx-checksum-unsafe", "cni-owns-offload", "tunnel-mtu-mismatch"},
		},
		{
			name: "MTU exactly at the limit",
			snap: func() *detect.Snapshot { s := node("6.1.0"); s.Tunnels.Devices[0].MTU = 1450; return s },
		},
		{
			name: "MTU one byte over",
			snap: func() *detect.Snapshot { s := node("6.1.0"); s.Tunnels.Devices[0].MTU = 1451; return s },
			want: []string{"tunnel-mtu-mismatch vxlan0 warning auto=false"},
		},
		{
			name: "IPv6 VXLAN needs 70 bytes",
			snap: func() *detect.Snapshot { s := node("6.1.0"); s.Tunnels.Devices[0].IPv6 = true; return s },
			want: []string{"tunnel-mtu-mismatch vxlan0 warning auto=false"},
		},
		{
			name: "steal warning and critical",
			snap: func() *detect.Snapshot { s := node("6.1.0"); s.CPU.Total.Steal = 0.12; return s },
			want: []string{"cpu-steal-high cpu warning auto=false"},
		},
		{
			name: "steal critical",
			snap: func() *detect.Snapshot { s := node("6.1.0"); s.CPU.Total.Steal = 0.30; return s },
			want: []string{"cpu-steal-high cpu critical auto=false"},
		},
		{
			name: "steal threshold is configurable",
			snap: func() *detect.Snapshot { s := node("6.1.0"); s.CPU.Total.Steal = 0.06; return s },
			cfg:  func(c *Config) { c.StealWarn = 0.05 },
			want: []string{"cpu-steal-high cpu warning auto=false"},
		},
		{
			name: "one CPU saturated by softirq, RPS off: RPS fix",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.CPU.PerCPU[1] = detect.CPUUsage{CPU: 1, Softirq: 0.95}
				return s
			},
			want: []string{"softirq-saturated cpu1 warning auto=true"},
		},
		{
			name: "softirq saturated but RPS already on: manual fix",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.CPU.PerCPU[1] = detect.CPUUsage{CPU: 1, Softirq: 0.95}
				s.NICs.Devices[0].RxQueues[0].RPSCPUs = "3"
				return s
			},
			want: []string{"softirq-saturated cpu1 warning auto=false"},
		},
		{
			name: "every CPU busy: spreading will not help",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.CPU.PerCPU = []detect.CPUUsage{{CPU: 0, Softirq: 0.9}, {CPU: 1, Softirq: 0.5, Idle: 0.1}}
				return s
			},
		},
		{
			name: "one CPU: nowhere to spread",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.CPU.PerCPU = []detect.CPUUsage{{CPU: 0, Softirq: 0.99}}
				return s
			},
		},
		{
			name: "CPU times unreadable",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.CPU = detect.CPU{Err: detect.Fail(errors.New("x"))}
				return s
			},
			unchecked: []string{"cpu-steal-high", "softirq-saturated"},
		},
		{
			name: "backlog drops and squeezes",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.Softnet.Delta = detect.SoftnetCounters{Processed: 1000, Dropped: 5, TimeSqueezed: 7}
				return s
			},
			want: []string{"softnet-drops netdev_max_backlog warning auto=true", "softnet-drops netdev_budget info auto=true"},
		},
		{
			name: "backlog at its bound: manual",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.Softnet.Delta.Dropped, s.Softnet.MaxBacklog = 5, MaxBacklogCap
				return s
			},
			want: []string{"softnet-drops netdev_max_backlog warning auto=false"},
		},
		{
			name: "conntrack 80% is a warning",
			snap: func() *detect.Snapshot { s := node("6.1.0"); s.Conntrack.Count = 800; return s },
			want: []string{"conntrack-near-full conntrack warning auto=true"},
		},
		{
			name: "conntrack 95% is critical",
			snap: func() *detect.Snapshot { s := node("6.1.0"); s.Conntrack.Count = 950; return s },
			want: []string{"conntrack-near-full conntrack critical auto=true"},
		},
		{
			name: "conntrack thresholds are configurable",
			snap: func() *detect.Snapshot { s := node("6.1.0"); s.Conntrack.Count = 800; return s },
			cfg:  func(c *Config) { c.ConntrackWarn = 0.9 },
		},
		{
			name: "conntrack full but memory unknown: manual",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.Conntrack.Count, s.Memory = 990, detect.Memory{Err: detect.Fail(errors.New("x"))}
				return s
			},
			want: []string{"conntrack-near-full conntrack critical auto=false"},
		},
		{
			name: "no conntrack in this namespace",
			snap: func() *detect.Snapshot { s := node("6.1.0"); s.Conntrack = detect.Conntrack{}; return s },
		},
		{
			name: "insert failures",
			snap: func() *detect.Snapshot { s := node("6.1.0"); s.Conntrack.Delta.InsertFailed = 2; return s },
			want: []string{"conntrack-insert-failed conntrack warning auto=false"},
		},
		{
			name: "kube-proxy iptables at scale",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.KubeProxy = detect.KubeProxy{Running: true, Mode: "iptables", NATRules: 30000, SyncSeconds: 0.2}
				return s
			},
			want: []string{"kube-proxy-iptables-scale kube-proxy warning auto=false"},
		},
		{
			name: "kube-proxy iptables, small",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.KubeProxy = detect.KubeProxy{Running: true, Mode: "iptables", NATRules: 300, SyncSeconds: 0.02}
				return s
			},
		},
		{
			name: "kube-proxy iptables without metrics",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.KubeProxy = detect.KubeProxy{Running: true, Mode: "iptables", NATRules: -1, SyncSeconds: -1}
				return s
			},
			unchecked: []string{"kube-proxy-iptables-scale"},
		},
		{
			name: "IPVS without modules",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.KubeProxy = detect.KubeProxy{Running: true, Mode: "ipvs", IPVSModules: map[string]bool{"ip_vs": true}}
				return s
			},
			want: []string{"ipvs-modules-missing kube-proxy info auto=false"},
		},
		{
			name: "IPVS with every module",
			snap: func() *detect.Snapshot {
				s := node("6.1.0")
				s.KubeProxy = detect.KubeProxy{Running: true, Mode: "ipvs", IPVSModules: map[string]bool{"ip_vs": true, "ip_vs_rr": true, "ip_vs_wrr": true, "ip_vs_sh": true}}
				return s
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			res := Evaluate(tt.snap(), cfg)
			if diff := cmp.Diff(tt.want, fired(res)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.unchecked, uncheckedRules(res)); diff != "" {
				t.Errorf("unchecked (-want +got):\n%s", diff)
			}
			for _, f := range res.Findings {
				if f.Fix.Auto && len(f.Fix.Changes) == 0 {
					t.Errorf("%s is auto-fixable but names no change", f.Rule)
				}
				if f.Summary == "" || f.Explanation == "" || len(f.References) == 0 || len(f.Evidence) == 0 {
					t.Errorf("%s: a finding needs a summary, an explanation, evidence and references", f.Rule)
				}
				if !f.Fix.Auto && f.Fix.Manual == "" {
					t.Errorf("%s: a manual fix must say why", f.Rule)
				}
			}
		})
	}
}

var (
	peer = netip.MustParseAddr("192.0.2.7")
	junk = netip.MustParseAddr("198.51.100.9")
)

// badFrom records three bad datagrams from src to port, as a capture that
// traced them would: to tunnel when port is that device's.
func badFrom(s *detect.Snapshot, src netip.Addr, port uint16, tunnel string) *detect.Snapshot {
	s.UDP.Delta, s.UDP.InCsumErrors = 3, 3
	c := &detect.ChecksumCapture{Duration: time.Second, Inspected: 40, CounterDelta: 3,
		Sources: []detect.BadChecksumSource{{Addr: src, Port: 40000, DstPort: port, Tunnel: tunnel, Count: 3}}}
	if tunnel != "" {
		c.TunnelBad = 3
	} else {
		c.OtherBad = 3
	}
	s.UDP.Capture = c
	return s
}

func TestAttributedFindingsNameTheSender(t *testing.T) {
	res := Evaluate(badFrom(node("6.1.0"), peer, 4789, "vxlan0"), DefaultConfig())
	if len(res.Findings) != 1 || !strings.Contains(res.Findings[0].Summary, "192.0.2.7") ||
		!strings.Contains(res.Findings[0].Explanation, "only when its kernel lacks the fix") {
		t.Errorf("want one finding naming the peer and saying when this node is a suspect, got %+v", res.Findings)
	}
	res = Evaluate(badFrom(node("6.1.0"), junk, 9999, ""), DefaultConfig())
	if len(res.Findings) != 1 || !strings.Contains(res.Findings[0].Summary, "198.51.100.9:40000 -> :9999") {
		t.Errorf("want one finding naming the sender and port, got %+v", res.Findings)
	}
}

// TestLossIsAnEstimateUnlessMeasured: without a figure measured on this
// node, the loss is worded as an estimate with its range; never "the
// tunnel loses 77%" as a fact.
func TestLossIsAnEstimateUnlessMeasured(t *testing.T) {
	res := Evaluate(offload(node("6.1.0"), false), DefaultConfig())
	if len(res.Findings) != 1 {
		t.Fatalf("findings = %+v", res.Findings)
	}
	f := res.Findings[0]
	for _, text := range []string{f.Summary, f.Impact.Summary} {
		if strings.Contains(text, "loses") || !strings.Contains(text, "estimated 52% to 77%") {
			t.Errorf("%q: want an estimate with its range", text)
		}
	}
	for _, src := range []string{"9645", "11435", "2.9", "veth testbed"} {
		if !strings.Contains(f.Impact.Source, src) {
			t.Errorf("impact source %q does not cite %s", f.Impact.Source, src)
		}
	}
	cfg := DefaultConfig()
	cfg.MeasuredLoss = 0.4
	f = Evaluate(offload(node("6.1.0"), false), cfg).Findings[0]
	if !strings.Contains(f.Summary, "measured on this node") || !strings.Contains(f.Summary, "40%") || strings.Contains(f.Summary, "estimate") {
		t.Errorf("measured summary = %q", f.Summary)
	}
}

// TestUnknownOuterChecksumIsNotAFact: where netlink did not give a
// device's outer checksum settings, the finding says it may be exposed.
func TestUnknownOuterChecksumIsNotAFact(t *testing.T) {
	s := node("5.4.40")
	s.Tunnels.Devices[0].OuterChecksum = nil
	f := Evaluate(s, DefaultConfig()).Findings[0]
	if strings.Contains(f.Explanation, "sends zero outer checksums") || !strings.Contains(f.Explanation, "netlink did not say") {
		t.Errorf("explanation = %q", f.Explanation)
	}
}

func TestMeasuredLossReplacesThePublishedFigure(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MeasuredLoss = 0.5
	res := Evaluate(offload(node("6.1.0"), false), cfg)
	if len(res.Findings) != 1 || res.Findings[0].Impact.ThroughputLossRatio != 0.5 {
		t.Fatalf("findings = %+v, want one with loss 0.5", res.Findings)
	}
}

func TestConntrackNeverLowersAndIsBounded(t *testing.T) {
	s := node("6.1.0")
	s.Conntrack.Count, s.Conntrack.Max = 990_000, 1_000_000
	s.Memory.TotalBytes = 8 << 30 // cap: 8 GiB / 32 / 320 B = 838860 entries, below the current max
	res := Evaluate(s, DefaultConfig())
	if len(res.Findings) != 1 || res.Findings[0].Fix.Auto || len(res.Findings[0].Fix.Changes) != 0 {
		t.Fatalf("a max above the memory cap must not be raised or lowered: %+v", res.Findings)
	}
	s.Memory.TotalBytes = 64 << 30
	res = Evaluate(s, DefaultConfig())
	ch := res.Findings[0].Fix.Changes
	if len(ch) != 1 || ch[0].Value != "2000000" {
		t.Fatalf("changes = %+v, want nf_conntrack_max=2000000", ch)
	}
}

func TestCPUMask(t *testing.T) {
	upTo := func(n int) []int {
		ids := make([]int, n)
		for i := range ids {
			ids[i] = i
		}
		return ids
	}
	for n, want := range map[int]string{0: "0", 1: "1", 2: "3", 4: "f", 31: "7fffffff", 32: "ffffffff", 33: "1,ffffffff", 64: "ffffffff,ffffffff", 65: "1,ffffffff,ffffffff"} {
		if got := CPUMask(upTo(n)); got != want {
			t.Errorf("CPUMask(0..%d) = %q, want %q", n-1, got, want)
		}
	}
	// CPUs 1 and 2 offline: the mask names the CPUs that are there.
	for _, tt := range []struct {
		ids  []int
		want string
	}{{[]int{0, 3}, "9"}, {[]int{0, 33}, "2,00000001"}, {[]int{5, 2}, "24"}} {
		if got := CPUMask(tt.ids); got != tt.want {
			t.Errorf("CPUMask(%v) = %q, want %q", tt.ids, got, tt.want)
		}
	}
}

func TestChangeCommand(t *testing.T) {
	for _, tt := range []struct {
		c    Change
		want string
	}{
		{Change{Kind: ChangeFeature, Target: "flannel.1", Setting: "tx-checksum-ip-generic", Value: "on"}, "ethtool -K flannel.1 tx-checksum-ip-generic on"},
		{Change{Kind: ChangeSysctl, Target: "net.core.netdev_budget", Value: "600"}, "sysctl -w net.core.netdev_budget=600"},
		{Change{Kind: ChangeRPS, Target: "eth0/rx-3", Value: "f"}, "echo f > /sys/class/net/eth0/queues/rx-3/rps_cpus"},
		{Change{Kind: ChangeModule, Target: "ip_vs_rr"}, "modprobe ip_vs_rr"},
	} {
		if got := tt.c.Command(); got != tt.want {
			t.Errorf("Command() = %q, want %q", got, tt.want)
		}
	}
}

func TestSeverityJSON(t *testing.T) {
	for _, s := range []Severity{Info, Warning, Critical} {
		b, err := s.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var back Severity
		if err := back.UnmarshalJSON(b); err != nil || back != s {
			t.Errorf("round trip of %v gave %v, %v", s, back, err)
		}
	}
	var s Severity
	if err := s.UnmarshalJSON([]byte(`"fatal"`)); err == nil {
		t.Error("unknown severity accepted")
	}
}

func TestCatalogIDs(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Catalog() {
		if seen[r.ID] {
			t.Errorf("duplicate rule ID %s", r.ID)
		}
		seen[r.ID] = true
		for _, c := range r.ID {
			if (c < 'a' || c > 'z') && c != '-' {
				t.Errorf("rule ID %q is not kebab-case", r.ID)
				break
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("the default configuration is invalid: %v", err)
	}
	for name, spoil := range map[string]func(*Config){
		"warn above critical": func(c *Config) { c.ConntrackWarn, c.ConntrackCritical = 0.9, 0.8 },
		"steal order":         func(c *Config) { c.StealWarn = 0.5 },
		"ratio above 1":       func(c *Config) { c.SoftirqBusy = 80 },
		"zero ratio":          func(c *Config) { c.ConntrackWarn = 0 },
		"negative rules":      func(c *Config) { c.KubeProxyNATRules = -1 },
		"loss above 1":        func(c *Config) { c.MeasuredLoss = 2 },
		// NaN compares false with everything, so a range check written as
		// "reject if below or above" lets it through.
		"NaN warn":          func(c *Config) { c.ConntrackWarn = math.NaN() },
		"NaN critical":      func(c *Config) { c.ConntrackCritical = math.NaN() },
		"NaN steal":         func(c *Config) { c.StealWarn = math.NaN() },
		"NaN softirq":       func(c *Config) { c.SoftirqBusy = math.NaN() },
		"NaN sync seconds":  func(c *Config) { c.KubeProxySyncSeconds = math.NaN() },
		"+Inf sync seconds": func(c *Config) { c.KubeProxySyncSeconds = math.Inf(1) },
		"-Inf warn":         func(c *Config) { c.ConntrackWarn = math.Inf(-1) },
		"+Inf critical":     func(c *Config) { c.ConntrackCritical = math.Inf(1) },
		"NaN loss":          func(c *Config) { c.MeasuredLoss = math.NaN() },
	} {
		c := DefaultConfig()
		spoil(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestPartlySeenRiseSaysWhatWasSeen: a capture that saw some bad packets
// to other ports but fewer than the kernel counted meanwhile leaves the
// rise unattributed, and says what it did see rather than "none".
func TestPartlySeenRiseSaysWhatWasSeen(t *testing.T) {
	s := badFrom(node("6.1.0"), junk, 9999, "")
	s.UDP.Delta, s.UDP.Capture.CounterDelta = 50, 40
	res := Evaluate(s, DefaultConfig())
	if len(res.Findings) != 1 {
		t.Fatalf("findings = %+v", res.Findings)
	}
	f := res.Findings[0]
	if !strings.Contains(f.Summary, "unattributed") || f.Fix.Auto {
		t.Errorf("want an unattributed, manual finding: %+v", f)
	}
	if strings.Contains(f.Explanation, "none of them") || !strings.Contains(f.Explanation, "3 of the 40") ||
		!strings.Contains(f.Explanation, "198.51.100.9:40000 -> :9999") {
		t.Errorf("explanation should say what the capture saw: %s", f.Explanation)
	}
}

// TestExternalVXLANChecksumIsPerPacket: a VXLAN device in external
// (collect_md) mode, as Cilium creates cilium_vxlan, takes each packet's
// outer checksum from its tunnel key, whatever its udpcsum setting says:
// on a kernel without the NAT fix it may be exposed, and the finding is
// not automatic.
func TestExternalVXLANChecksumIsPerPacket(t *testing.T) {
	s := node("5.4.40")
	s.Tunnels.Devices[0].OuterChecksum = &detect.OuterChecksum{UDPCsum: true, PerPacket: true}
	res := Evaluate(s, DefaultConfig())
	if len(res.Findings) != 1 || res.Findings[0].Rule != TunnelTxChecksumUnsafe {
		t.Fatalf("findings = %v, want tunnel-tx-checksum-unsafe", fired(res))
	}
	f := res.Findings[0]
	if f.Fix.Auto || !strings.Contains(f.Fix.Manual, "tunnel key") {
		t.Errorf("fix = %+v, want manual, naming the per-packet tunnel key", f.Fix)
	}
}
