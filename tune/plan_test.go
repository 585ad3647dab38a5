package tune

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// planned is the comparable part of a planned change.
type planned struct {
	Key      Key
	From, To string
	Refused  bool
}

func summarize(p Plan) []planned {
	var out []planned
	for _, c := range p.Changes {
		out = append(out, planned{Key: c.Key, From: c.From, To: c.To, Refused: c.Refused != ""})
	}
	return out
}

// loadedSnapshot is n's snapshot with tx checksum offload off on the
// tunnel, the conntrack table near full, softnet drops and squeezes, one
// CPU saturated by softirq and kube-proxy in IPVS mode without ip_vs_sh.
func loadedSnapshot(t *testing.T, n *node) *detect.Snapshot {
	n.et.setRequested(t, "vxlan0", map[string]bool{detect.FeatureTxChecksumGeneric: false})
	s := n.snapshot(t)
	s.Softnet.Delta = detect.SoftnetCounters{Processed: 1e6, Dropped: 10, TimeSqueezed: 20}
	s.KubeProxy = detect.KubeProxy{Running: true, Mode: "ipvs", NATRules: -1, SyncSeconds: -1, Version: kubeProxy126,
		IPVSModules: map[string]bool{"ip_vs": true, "ip_vs_rr": true, "ip_vs_wrr": true}}
	return s
}

func TestProposeFromRules(t *testing.T) {
	n := newNode(t)
	s := loadedSnapshot(t, n)
	res := rules.Evaluate(s, rules.DefaultConfig())
	p := Propose(s, res.Findings, PlanOptions{})
	want := []planned{
		// kube-proxy runs, and owns nf_conntrack_max.
		{Key: Key{Kind: rules.ChangeSysctl, Target: SysctlConntrackMax, Setting: ""}, From: "262144", To: "524288", Refused: true},
		{Key: Key{Kind: rules.ChangeModule, Target: "ip_vs_sh", Setting: ""}, From: "unloaded", To: "loaded"},
		{Key: Key{Kind: rules.ChangeRPS, Target: "eth0/rx-0", Setting: ""}, From: "0", To: "3"},
		{Key: Key{Kind: rules.ChangeRPS, Target: "eth0/rx-1", Setting: ""}, From: "0", To: "3"},
		{Key: Key{Kind: rules.ChangeSysctl, Target: SysctlMaxBacklog, Setting: ""}, From: "1000", To: "2000"},
		{Key: Key{Kind: rules.ChangeFeature, Target: "vxlan0", Setting: detect.FeatureTxChecksumGeneric}, From: "off", To: "on"},
		{Key: Key{Kind: rules.ChangeSysctl, Target: SysctlBudget, Setting: ""}, From: "300", To: "600"},
	}
	if diff := cmp.Diff(want, summarize(p)); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	for _, c := range p.Changes {
		if c.Rule == "" || c.Subject == "" || c.Why == "" {
			t.Errorf("%s: rule, subject or why missing: %+v", c.Key, c)
		}
	}
	only := Propose(s, res.Findings, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
	if len(only.Changes) != 1 || only.Changes[0].Setting != detect.FeatureTxChecksumGeneric {
		t.Errorf("--rule %s planned %+v", rules.TunnelTxChecksumOff, summarize(only))
	}
	if notes := only.Changes[0].Notes; len(notes) != 1 || !strings.Contains(notes[0], detect.FeatureTSO) {
		t.Errorf("the checksum change does not say it brings back segmentation: %q", notes)
	}
}

func TestProposeRefusesOwnedUnlessForced(t *testing.T) {
	n := newNode(t)
	n.et.devs["vxlan.calico"] = n.et.devs["vxlan0"]
	delete(n.et.devs, "vxlan0")
	n.et.setRequested(t, "vxlan.calico", map[string]bool{detect.FeatureTxChecksumGeneric: false})
	s := n.snapshot(t)
	s.Tunnels.Devices[0].Name = "vxlan.calico"
	s.Tunnels.Devices[0].Features = detect.Features{State: map[string]bool{detect.FeatureTxChecksumGeneric: false}}
	s.Host.Processes = []string{detect.ProcCalicoNode}
	s.CNI = detect.DetectCNI(s)
	res := rules.Evaluate(s, rules.DefaultConfig())
	opts := PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}}

	p := Propose(s, res.Findings, opts)
	if len(p.Changes) != 1 {
		t.Fatalf("want one change, got %+v", summarize(p))
	}
	why := p.Changes[0].Refused
	for _, want := range []string{detect.OwnerFelix, "felixconfiguration", detect.FelixOverride, "--force"} {
		if !strings.Contains(why, want) {
			t.Errorf("refusal %q does not mention %q", why, want)
		}
	}
	if p.Approved() != nil {
		t.Errorf("approved %+v", p.Approved())
	}

	opts.Force = true
	if p := Propose(s, res.Findings, opts); len(p.Approved()) != 1 {
		t.Errorf("--force: want the change approved, got %+v", summarize(p))
	}
}

func TestProposeConntrackOwnedByKubeProxy(t *testing.T) {
	n := newNode(t)
	s := n.snapshot(t)
	s.KubeProxy.Running = true
	res := rules.Evaluate(s, rules.DefaultConfig())
	p := Propose(s, res.Findings, PlanOptions{Rules: []string{rules.ConntrackNearFull}})
	if len(p.Changes) != 1 || !strings.Contains(p.Changes[0].Refused, "KubeProxyConfiguration") {
		t.Fatalf("want the conntrack change refused for kube-proxy, got %+v", p.Changes)
	}
}

// finding is an auto-fixable finding with one change, for the tests of
// tune's own checks, which hold whatever a rule says.
func finding(c rules.Change) rules.Finding {
	return rules.Finding{Rule: "test-rule", Subject: c.Target, Summary: "test", Fix: rules.Fix{Auto: true, Changes: []rules.Change{c}}}
}

// peerMeasured makes s hold a recent peer measurement of dev at its MTU
// with offload on and off at the rates given.
func peerMeasured(dev string, on, off float64) func(*detect.Snapshot) {
	return func(s *detect.Snapshot) {
		mtu := 0
		for _, t := range s.Tunnels.Devices {
			if t.Name == "vxlan0" {
				mtu = t.MTU
			}
		}
		s.Peers.Measurements = append(s.Peers.Measurements, detect.PeerMeasurement{
			Peer: "node-b", Device: dev, MTU: mtu, At: s.Taken.Add(-time.Minute),
			Cases: []detect.PeerCase{
				{Name: detect.PeerCaseOffloadOn, Direction: detect.PeerSend, BitsPerSecond: on},
				{Name: detect.PeerCaseOffloadOff, Direction: detect.PeerSend, BitsPerSecond: off},
			}})
	}
}

func TestProposeChecks(t *testing.T) {
	feature := func(dev, name, v string) rules.Change {
		return rules.Change{Kind: rules.ChangeFeature, Target: dev, Setting: name, Value: v}
	}
	sysctl := func(k, v string) rules.Change { return rules.Change{Kind: rules.ChangeSysctl, Target: k, Value: v} }
	rps := func(q, v string) rules.Change { return rules.Change{Kind: rules.ChangeRPS, Target: q, Value: v} }
	release := func(r string) func(*detect.Snapshot) {
		return func(s *detect.Snapshot) {
			v, _ := detect.ParseRelease(r)
			s.Kernel = detect.Kernel{Release: r, Version: v}
		}
	}
	cpus := func(ids ...int) func(*detect.Snapshot) {
		return func(s *detect.Snapshot) {
			s.CPU.PerCPU = nil
			for _, id := range ids {
				s.CPU.PerCPU = append(s.CPU.PerCPU, detect.CPUUsage{CPU: id})
			}
		}
	}
	tests := []struct {
		name   string
		change rules.Change
		edit   func(*detect.Snapshot)
		refuse string // substring of the reason; "" means approved
	}{
		{"checksum on", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"), nil, ""},
		{"checksum off", feature("vxlan0", detect.FeatureTxChecksumGeneric, "off"), release("4.19.0"), ""},
		{"checksum on without the fix", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"), release("5.4.40"), "NAT checksum fix"},
		{"checksum on, distribution kernel", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"), release("5.4.0-150-generic"), "status unknown"},
		{"checksum on, kernel unreadable", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"),
			func(s *detect.Snapshot) { s.Kernel = detect.Kernel{Err: detect.Fail(detect.ErrPermission)} }, "kernel release could not be read"},
		{"checksum on, bad checksums arriving", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"),
			func(s *detect.Snapshot) { s.UDP.Delta = 3 }, "3 UDP packets with bad checksums"},
		{"checksum on, counters unreadable", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"),
			func(s *detect.Snapshot) { s.UDP.Err = detect.Fail(detect.ErrNotSupported) }, "could not be read"},
		{"checksum on, IPv6 counter unreadable", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"),
			func(s *detect.Snapshot) { s.UDP.Err6 = detect.Fail(detect.ErrPermission) }, "could not be read"},
		{"checksum on, errors since boot and one quiet window", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"),
			func(s *detect.Snapshot) { s.UDP.InCsumErrors, s.UDP.QuietFor = 500, time.Second }, "one quiet window is no evidence"},
		{"checksum on, errors since boot and a long quiet spell", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"),
			func(s *detect.Snapshot) { s.UDP.InCsumErrors, s.UDP.QuietFor = 500, detect.MinQuietForOffload }, ""},
		{"checksum on, a peer sends bad tunnel packets", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"),
			func(s *detect.Snapshot) {
				s.UDP.Delta = 2
				s.UDP.Capture = &detect.ChecksumCapture{TunnelBad: 2, Sources: []detect.BadChecksumSource{
					{Addr: netip.MustParseAddr("192.0.2.7"), DstPort: 4789, Tunnel: "vxlan0", Count: 2}}}
			}, "bad outer checksums arrived from 192.0.2.7"},
		{"checksum on, junk to another port only", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"),
			func(s *detect.Snapshot) {
				s.UDP.Delta, s.UDP.InCsumErrors = 3, 3
				s.UDP.Capture = &detect.ChecksumCapture{OtherBad: 3, Sources: []detect.BadChecksumSource{
					{Addr: netip.MustParseAddr("198.51.100.9"), Port: 5353, DstPort: 9999, Count: 3}}}
			}, ""},
		{"checksum on, a peer measured offload on slower here", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"),
			peerMeasured("vxlan0", 2e8, 6e9), "offload on measured slower than off on this path"},
		{"checksum on, a peer measured offload helping", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"),
			peerMeasured("vxlan0", 9e9, 3e9), ""},
		{"checksum on, peer measurements unreadable", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"),
			func(s *detect.Snapshot) { s.Peers.Err = detect.Fail(detect.ErrPermission) }, "saved peer measurements could not be read"},
		{"checksum on, offload slower on another device", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"),
			peerMeasured("flannel.1", 2e8, 6e9), ""},
		{"TSO on", feature("vxlan0", detect.FeatureTSO, "on"), nil, ""},
		{"not a tunnel", feature("eth0", detect.FeatureTxChecksumGeneric, "on"), nil, "not a tunnel device"},
		{"unknown device", feature("ghost0", detect.FeatureTxChecksumGeneric, "on"), nil, "not a tunnel device"},
		{"feature off the allowlist", feature("vxlan0", detect.FeatureGRO, "off"), nil, "allowlist"},
		{"fixed feature", feature("vxlan0", detect.FeatureTxChecksumGeneric, "on"),
			func(s *detect.Snapshot) {
				s.Tunnels.Devices[0].Features.Fixed = []string{detect.FeatureTxChecksumGeneric}
			}, "does not let"},
		{"bad feature value", feature("vxlan0", detect.FeatureTSO, "maybe"), nil, "neither on nor off"},
		{"features unreadable", feature("vxlan0", detect.FeatureTSO, "on"),
			func(s *detect.Snapshot) {
				s.Tunnels.Devices[0].Features = detect.Features{Err: detect.Fail(detect.ErrPermission)}
			}, "could not be read"},
		{"backlog doubled", sysctl(SysctlMaxBacklog, "2000"), nil, ""},
		{"backlog lowered", sysctl(SysctlMaxBacklog, "500"), nil, "only ever raises"},
		{"backlog unchanged", sysctl(SysctlMaxBacklog, "1000"), nil, "only ever raises"},
		{"backlog tripled", sysctl(SysctlMaxBacklog, "3000"), nil, "more than one step"},
		{"backlog past the cap", sysctl(SysctlMaxBacklog, "65537"), func(s *detect.Snapshot) { s.Softnet.MaxBacklog = 60000 }, "past nodetune's bound"},
		{"backlog unknown", sysctl(SysctlMaxBacklog, "2000"), func(s *detect.Snapshot) { s.Softnet.MaxBacklog = 0 }, "unknown"},
		{"budget not a number", sysctl(SysctlBudget, "lots"), nil, "not a number"},
		{"conntrack past the memory cap", sysctl(SysctlConntrackMax, "524288"),
			func(s *detect.Snapshot) { s.Memory.TotalBytes = 1 << 30 }, "past nodetune's bound of 104857"},
		{"conntrack, memory unknown", sysctl(SysctlConntrackMax, "524288"),
			func(s *detect.Snapshot) { s.Memory = detect.Memory{Err: detect.Fail(detect.ErrPermission)} }, "memory size"},
		{"sysctl off the allowlist", sysctl("net.ipv4.ip_forward", "1"), nil, "allowlist"},
		{"rps", rps("eth0/rx-1", "3"), nil, ""},
		{"rps on a queue not probed", rps("eth0/rx-7", "3"), nil, "not a receive queue"},
		{"rps path escape", rps("../../../etc/rx-0", "3"), nil, "not DEV/rx-N"},
		{"rps on a tx queue", rps("eth0/tx-0", "3"), nil, "not DEV/rx-N"},
		{"rps on a CPU that does not exist", rps("eth0/rx-0", "4"), nil, "names CPU 2"},
		{"rps on the CPUs present, with a gap", rps("eth0/rx-0", rules.CPUMask([]int{0, 2, 3})), cpus(0, 2, 3), ""},
		{"rps on an offline CPU", rps("eth0/rx-0", "3"), cpus(0, 2, 3), "names CPU 1, which the node does not have (it has CPUs 0,2,3)"},
		{"rps, CPUs unknown", rps("eth0/rx-0", "3"), cpus(), "CPUs are unknown"},
		{"rps off", rps("eth0/rx-0", "0"), nil, "turns RPS off"},
		{"rps bad mask", rps("eth0/rx-0", "xyz"), nil, "not hex"},
		{"module", rules.Change{Kind: rules.ChangeModule, Target: "ip_vs_rr", Value: "loaded"}, nil, ""},
		{"module off the allowlist", rules.Change{Kind: rules.ChangeModule, Target: "nf_nat", Value: "loaded"}, nil, "allowlist"},
		{"module unload", rules.Change{Kind: rules.ChangeModule, Target: "ip_vs", Value: "unloaded"}, nil, "only loads"},
		{"unknown kind", rules.Change{Kind: "iptables", Target: "x", Value: "y"}, nil, "allowlist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newNode(t).snapshot(t)
			if tt.edit != nil {
				tt.edit(s)
			}
			p := Propose(s, []rules.Finding{finding(tt.change)}, PlanOptions{Force: true})
			if len(p.Changes) != 1 {
				t.Fatalf("want one change, got %+v", p.Changes)
			}
			c := p.Changes[0]
			if tt.refuse == "" {
				if c.Refused != "" || !c.vetted {
					t.Errorf("refused: %s", c.Refused)
				}
				return
			}
			if !strings.Contains(c.Refused, tt.refuse) || c.vetted {
				t.Errorf("refusal %q, want one that says %q", c.Refused, tt.refuse)
			}
		})
	}
}

func TestProposeSkipsManualAndDuplicates(t *testing.T) {
	s := newNode(t).snapshot(t)
	manual := finding(rules.Change{Kind: rules.ChangeSysctl, Target: SysctlBudget, Value: "600"})
	manual.Fix.Auto = false
	dup := finding(rules.Change{Kind: rules.ChangeSysctl, Target: SysctlBudget, Value: "600"})
	clash := finding(rules.Change{Kind: rules.ChangeSysctl, Target: SysctlBudget, Value: "500"})
	p := Propose(s, []rules.Finding{manual, dup, dup, clash}, PlanOptions{})
	want := []planned{
		{Key: Key{Kind: rules.ChangeSysctl, Target: SysctlBudget, Setting: ""}, From: "300", To: "600"},
		{Key: Key{Kind: rules.ChangeSysctl, Target: SysctlBudget, Setting: ""}, From: "300", To: "500", Refused: true},
	}
	if diff := cmp.Diff(want, summarize(p)); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
}

// TestPlanKeepsOffloadOffAfterUnsafe: once nodetune turned tx checksum
// offload off because bad checksums arrived, a later quiet window must not
// turn it back on (it would flip-flop), across restarts too, until
// rollback closes that entry or --force says so.
func TestPlanKeepsOffloadOffAfterUnsafe(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	dir := t.TempDir()
	tu := openTuner(t, dir, n.host)
	s := n.snapshot(t)
	// offload is on, the kernel lacks the NAT fix and the device sends
	// zero outer checksums: exposed
	s.Kernel.Release = "5.4.40"
	s.Kernel.Version = detect.Version{Major: 5, Minor: 4, Patch: 40}
	s.Tunnels.Devices[0].OuterChecksum = &detect.OuterChecksum{}
	only := func(rule string, force bool) PlanOptions { return PlanOptions{Rules: []string{rule}, Force: force} }
	out := tu.Apply(ctx, tu.Plan(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, only(rules.TunnelTxChecksumUnsafe, false)))
	if diff := cmp.Diff([]result{{"vxlan0 tx-checksum-ip-generic", Verified}}, results(out)); diff != "" {
		t.Fatalf("turning offload off (-want +got):\n%s", diff)
	}

	quiet := func(tu *Tuner, force bool) Change {
		t.Helper()
		s := n.snapshot(t) // offload off, no bad checksums in this window
		p := tu.Plan(s, rules.Evaluate(s, rules.DefaultConfig()).Findings, only(rules.TunnelTxChecksumOff, force))
		if len(p.Changes) != 1 {
			t.Fatalf("plan: %+v", summarize(p))
		}
		return p.Changes[0]
	}
	c := quiet(tu, false)
	for _, want := range []string{"tunnel-tx-checksum-unsafe", "bad UDP checksums", "nodetune rollback", "--force"} {
		if !strings.Contains(c.Refused, want) {
			t.Errorf("refusal %q does not say %q", c.Refused, want)
		}
	}
	tu.Close()
	tu = openTuner(t, dir, n.host) // a restart
	if c := quiet(tu, false); c.Refused == "" {
		t.Errorf("after a restart, offload is planned on again")
	}
	if c := quiet(tu, true); c.Refused != "" {
		t.Errorf("--force: refused: %s", c.Refused)
	}
	ro, err := OpenReadOnly(dir, n.host) // what fix --dry-run sees
	if err != nil {
		t.Fatal(err)
	}
	if c := quiet(ro, false); c.Refused == "" {
		t.Errorf("a read-only journal plans offload on again")
	}
	tu.netns = "net:[1]" // the entry was made in another namespace, with its own vxlan0
	if c := quiet(tu, false); c.Refused != "" {
		t.Errorf("an entry of another network namespace keeps offload off here: %s", c.Refused)
	}
	tu.netns = ro.netns
	if back := tu.Rollback(ctx, false); len(back) != 1 || back[0].Result != Restored {
		t.Fatalf("rollback: %v", back)
	}
	n.et.setRequested(t, "vxlan0", map[string]bool{detect.FeatureTxChecksumGeneric: false})
	if c := quiet(tu, false); c.Refused != "" {
		t.Errorf("after rollback closed the entry: refused: %s", c.Refused)
	}
}
