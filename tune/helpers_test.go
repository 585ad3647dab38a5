package tune

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/safchain/ethtool"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/probes"
)

// kernelEthtool models the kernel's feature logic for a VXLAN device, as
// `ethtool -k` shows it on kernel 6.18: the tx segmentation features are
// active only while requested and while tx checksumming is active, and
// stay requested when the kernel drops them.
type kernelEthtool struct {
	devs map[string]map[string]ethtool.FeatureState
	// stuck lists features the "driver" silently refuses to turn on.
	stuck map[string]bool
	// changes counts Change calls, that is, writes.
	changes int
}

func newKernelEthtool(devs ...string) *kernelEthtool {
	k := &kernelEthtool{devs: map[string]map[string]ethtool.FeatureState{}, stuck: map[string]bool{}}
	for _, d := range devs {
		fs := map[string]ethtool.FeatureState{}
		for _, f := range append(slices.Clone(allowedFeatures), detect.FeatureGSO, detect.FeatureGRO) {
			fs[f] = ethtool.FeatureState{Available: true, Requested: true, Active: true}
		}
		fs[detect.FeatureUDPTunnelSeg] = ethtool.FeatureState{} // fixed off
		k.devs[d] = fs
	}
	return k
}

func (k *kernelEthtool) FeaturesWithState(dev string) (map[string]ethtool.FeatureState, error) {
	fs, ok := k.devs[dev]
	if !ok {
		return nil, syscall.ENODEV
	}
	return maps.Clone(fs), nil
}

func (k *kernelEthtool) Change(dev string, config map[string]bool) error {
	fs, ok := k.devs[dev]
	if !ok {
		return syscall.ENODEV
	}
	for name, v := range config {
		st, ok := fs[name]
		if !ok {
			return fmt.Errorf("unsupported feature %q", name)
		}
		if !st.Available {
			continue // the kernel ignores fixed features
		}
		st.Requested = v
		fs[name] = st
	}
	k.changes++
	k.recompute(dev)
	return nil
}

func (k *kernelEthtool) recompute(dev string) {
	fs := k.devs[dev]
	csum := fs[detect.FeatureTxChecksumGeneric].Requested && !k.stuck[detect.FeatureTxChecksumGeneric]
	for name, st := range fs {
		st.Active = st.Available && st.Requested && !k.stuck[name]
		if slices.Contains(SegmentationFeatures, name) && !csum {
			st.Active = false
		}
		fs[name] = st
	}
}

// state is the requested/active state of every feature of dev, for
// comparing a device before and after.
func (k *kernelEthtool) state(dev string) map[string]ethtool.FeatureState {
	return maps.Clone(k.devs[dev])
}

// setRequested sets features as `ethtool -K` would.
func (k *kernelEthtool) setRequested(t *testing.T, dev string, config map[string]bool) {
	t.Helper()
	if err := k.Change(dev, config); err != nil {
		t.Fatal(err)
	}
	k.changes = 0
}

// fixtureTree writes files under a new directory: path -> content.
func fixtureTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// node is a fixture host: procfs and sysfs trees and a modelled ethtool.
type node struct {
	proc, sys string
	et        *kernelEthtool
	host      *Host
}

func newNode(t *testing.T) *node { return newNodeAt(t, fixtureProc(t)) }

// fixtureProc is a procfs tree with the sysctls tune may write.
func fixtureProc(t *testing.T) string {
	return fixtureTree(t, map[string]string{
		"sys/net/netfilter/nf_conntrack_max": "262144\n",
		"sys/net/core/netdev_max_backlog":    "1000\n",
		"sys/net/core/netdev_budget":         "300\n",
		"sys/kernel/osrelease":               "6.18.0\n",
	})
}

// newNodeAt is a fixture node whose procfs tree is proc.
func newNodeAt(t *testing.T, proc string) *node {
	t.Helper()
	sys := fixtureTree(t, map[string]string{
		"class/net/eth0/queues/rx-0/rps_cpus": "0\n",
		"class/net/eth0/queues/rx-1/rps_cpus": "0\n",
	})
	et := newKernelEthtool("vxlan0", "eth0")
	return &node{proc: proc, sys: sys, et: et, host: NewHost(proc, sys, et)}
}

// snapshot is what probes would have read from n: a VXLAN device over
// eth0 on a fixed kernel, with no bad UDP checksums.
func (n *node) snapshot(t *testing.T) *detect.Snapshot {
	t.Helper()
	feats := func(dev string) detect.Features { return probes.WatchedFeatures(n.et.devs[dev]) }
	v, err := detect.ParseRelease("6.18.0")
	if err != nil {
		t.Fatal(err)
	}
	s := &detect.Snapshot{
		Kernel: detect.Kernel{Release: "6.18.0", Version: v},
		Memory: detect.Memory{TotalBytes: 8 << 30},
		Tunnels: detect.Tunnels{Devices: []detect.Tunnel{{
			Name: "vxlan0", Index: 5, Kind: detect.KindVXLAN, VNI: 42, Port: 4789, MTU: 1450, Up: true,
			Features: feats("vxlan0"),
			Underlay: &detect.Underlay{Name: "eth0", Index: 2, MTU: 1500, Source: "link", Features: feats("eth0"),
				RxQueues: []detect.RxQueue{
					{Name: "rx-0", RPSCPUs: readFile(t, filepath.Join(n.sys, "class/net/eth0/queues/rx-0/rps_cpus"))},
					{Name: "rx-1", RPSCPUs: readFile(t, filepath.Join(n.sys, "class/net/eth0/queues/rx-1/rps_cpus"))},
				}},
		}}},
		CPU:       detect.CPU{PerCPU: []detect.CPUUsage{{CPU: 0, Softirq: 0.95}, {CPU: 1, Idle: 0.9}}},
		Conntrack: detect.Conntrack{Present: true, Count: 250000, Max: mustInt(t, readFile(t, filepath.Join(n.proc, "sys/net/netfilter/nf_conntrack_max")))},
		Softnet: detect.Softnet{
			MaxBacklog: mustInt(t, readFile(t, filepath.Join(n.proc, "sys/net/core/netdev_max_backlog"))),
			Budget:     mustInt(t, readFile(t, filepath.Join(n.proc, "sys/net/core/netdev_budget"))),
		},
		KubeProxy: detect.KubeProxy{IPVSModules: map[string]bool{}},
		// eth0 is a virtual device (no queue counts, no interrupts), so
		// RPS is the way to spread its receive work.
		NICs: detect.NICs{Devices: []detect.NIC{{
			Name:        "eth0",
			ChannelsErr: detect.Fail(fmt.Errorf("ethtool -l eth0: %w", detect.ErrNotSupported)),
			RxQueues:    eth0Queues(t, n),
		}}},
	}
	return s
}

// kubeProxy126 is a kube-proxy old enough to need the ip_vs modules loaded
// ahead (from 1.27 it checks none).
var kubeProxy126 = detect.KubeVersion{Major: 1, Minor: 26, Git: "v1.26.15"}

// eth0Queues are eth0's receive queues with their current RPS masks.
func eth0Queues(t *testing.T, n *node) []detect.RxQueue {
	return []detect.RxQueue{
		{Name: "rx-0", RPSCPUs: readFile(t, filepath.Join(n.sys, "class/net/eth0/queues/rx-0/rps_cpus"))},
		{Name: "rx-1", RPSCPUs: readFile(t, filepath.Join(n.sys, "class/net/eth0/queues/rx-1/rps_cpus"))},
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := parseInt(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

// flakySystem is a System whose writes fail, or that says a setting is
// not writable, where its funcs say so, as a kernel refusing a value or a
// process without the capability would.
type flakySystem struct {
	System
	fail func(k Key, value string) error
	// unwritable, when set, answers Writable for the keys it returns an
	// error for.
	unwritable func(k Key) error
}

func (f *flakySystem) Writable(ctx context.Context, k Key) error {
	if f.unwritable != nil {
		if err := f.unwritable(k); err != nil {
			return err
		}
	}
	return f.System.Writable(ctx, k)
}

func (f *flakySystem) Write(ctx context.Context, k Key, value string) error {
	if f.fail != nil {
		if err := f.fail(k, value); err != nil {
			return err
		}
	}
	return f.System.Write(ctx, k, value)
}

// applyProposed applies p, a plan Propose made for a test whose journal
// holds no claims or holds that Plan would add, as if t's Plan had made it.
func (t *Tuner) applyProposed(ctx context.Context, p Plan) []Outcome {
	p.approve(t)
	return t.Apply(ctx, p)
}
