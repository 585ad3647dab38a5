package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nodetune/nodetune/bench"
	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/testbed"
)

// calicoNode is a node with Calico's VXLAN device over a jumbo-frame NIC,
// offload switched off by Felix.
var calicoNode = detect.Tunnels{Devices: []detect.Tunnel{{
	Name: "vxlan.calico", Kind: "vxlan", VNI: 4096, Port: 4789, MTU: 8951, Up: true,
	Underlay: &detect.Underlay{Name: "ens5", MTU: 9001},
	Features: detect.Features{State: map[string]bool{detect.FeatureTxChecksumGeneric: false, detect.FeatureTSO: false}},
}}}

func TestBenchOptions(t *testing.T) {
	g := &globals{log: slog.New(slog.DiscardHandler)}
	node := func() (detect.Tunnels, error) { return calicoNode, nil }
	unreadable := func() (detect.Tunnels, error) { return detect.Tunnels{}, errors.New("netlink: permission denied") }
	def := benchFlags{output: "text", duration: time.Second, warmup: 0, streams: 2, mirror: true, nodeFeatures: true}
	with := func(mod func(*benchFlags)) benchFlags { f := def; mod(&f); return f }
	base := bench.Options{Duration: time.Second, Streams: 2}
	for _, tc := range []struct {
		name    string
		flags   benchFlags
		tunnels func() (detect.Tunnels, error)
		want    bench.Options
		wantErr string
	}{
		{name: "mirrors the node", flags: def, tunnels: node, want: bench.Options{
			Kind: "vxlan", TunnelName: "vxlan.calico", Mirrored: "vxlan.calico", TunnelMTU: 8951, UnderlayMTU: 9001,
			VNI: 4096, Port: 4789, NodeFeatures: calicoNode.Devices[0].Features.State, Duration: time.Second, Streams: 2}},
		{name: "without node features", flags: with(func(f *benchFlags) { f.nodeFeatures = false }), tunnels: node, want: bench.Options{
			Kind: "vxlan", TunnelName: "vxlan.calico", Mirrored: "vxlan.calico", TunnelMTU: 8951, UnderlayMTU: 9001,
			VNI: 4096, Port: 4789, Duration: time.Second, Streams: 2}},
		{name: "no mirror", flags: with(func(f *benchFlags) { f.mirror = false }), tunnels: node, want: base},
		{name: "unreadable node", flags: def, tunnels: unreadable, want: base},
		{name: "another kind", flags: with(func(f *benchFlags) { f.kind = "geneve" }), tunnels: node,
			want: bench.Options{Kind: "geneve", Duration: time.Second, Streams: 2}},
		{name: "MTU over a mirrored underlay", flags: with(func(f *benchFlags) { f.mtu = 1400 }), tunnels: node, want: bench.Options{
			Kind: "vxlan", TunnelName: "vxlan.calico", Mirrored: "vxlan.calico", TunnelMTU: 1400, UnderlayMTU: 9001,
			VNI: 4096, Port: 4789, NodeFeatures: calicoNode.Devices[0].Features.State, Duration: time.Second, Streams: 2}},
		{name: "MTU needs a bigger underlay", flags: with(func(f *benchFlags) { f.mirror = false; f.mtu = 9000 }),
			want: bench.Options{TunnelMTU: 9000, UnderlayMTU: 9050, Duration: time.Second, Streams: 2}},
		{name: "missing device", flags: with(func(f *benchFlags) { f.device = "flannel.1" }), tunnels: node, wantErr: `no tunnel named "flannel.1"`},
		{name: "bad output", flags: with(func(f *benchFlags) { f.output = "yaml" }), wantErr: "-o: want text or json"},
		{name: "bad kind", flags: with(func(f *benchFlags) { f.kind = "gre" }), wantErr: "--kind: want vxlan, geneve or ipip"},
		{name: "no streams", flags: with(func(f *benchFlags) { f.streams = 0 }), wantErr: "--streams"},
		{name: "zero duration", flags: with(func(f *benchFlags) { f.duration = 0 }), wantErr: "--duration"},
		{name: "tiny MTU", flags: with(func(f *benchFlags) { f.mtu = 100 }), wantErr: "--mtu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.flags.options(g, tc.tunnels)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(bench.Options{}, "Log")); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExplainBench(t *testing.T) {
	perm := fmt.Errorf("creating network namespace x: %w", detect.ErrPermission)
	if got := explainBench(context.Background(), "", perm).Error(); !strings.Contains(got, "without privilege") || !errors.Is(explainBench(context.Background(), "", perm), detect.ErrPermission) {
		t.Errorf("permission: %q", got)
	}
	nosup := fmt.Errorf("creating geneve device: %w", detect.ErrNotSupported)
	if got := explainBench(context.Background(), "geneve", nosup).Error(); !strings.Contains(got, "lacks") || !strings.Contains(got, "geneve devices") {
		t.Errorf("not supported: %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := explainBench(ctx, "", context.Canceled); !strings.Contains(got.Error(), "interrupted") || !errors.Is(got, context.Canceled) {
		t.Errorf("interrupted: %q", got)
	}
}

func TestBenchCommand(t *testing.T) {
	privtest.Root(t)
	g := newGlobals()
	root := newRoot(g)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs([]string{"bench", "--duration", "200ms", "--warmup", "100ms", "-o", "json", "--log.level", "error"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("nodetune bench: %v", err)
	}
	var doc struct {
		Cases []struct {
			Name          string  `json:"name"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"cases"`
		Ratios map[string]float64 `json:"ratios"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("bench -o json: %v\n%s", err, out.String())
	}
	if len(doc.Cases) < 3 || doc.Cases[0].Name != "underlay" || doc.Cases[2].Name != "tunnel-offload-off" || doc.Ratios["offload_off_over_on"] <= 0 {
		t.Errorf("bench -o json:\n%s", out.String())
	}
	// Other tests (serve's) may be benching at the same time; only this
	// process's namespaces are ours to count.
	left, err := testbed.Leftovers(bench.DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	mine := fmt.Sprintf("%s-%d-", bench.DefaultPrefix, os.Getpid())
	for _, name := range left {
		if strings.HasPrefix(name, mine) {
			t.Errorf("left behind: %s", name)
		}
	}
}
