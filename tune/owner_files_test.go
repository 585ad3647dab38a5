package tune

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// TestProposeRefusesWhatAFileOwns: a udev rule that re-applies tx checksum
// offload off is an owner like Felix, and so is a place nodetune could not
// read; the plan refuses to turn offload on and names the file.
func TestProposeRefusesWhatAFileOwns(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(s *detect.Snapshot)
		want []string
	}{
		{"udev rule", func(s *detect.Snapshot) {
			s.Ownership.OffloadFiles = []detect.OffloadFile{{Kind: detect.FileUdevRule, Path: "/etc/udev/rules.d/90-flannel.rules", Line: 2, OnlyAction: true,
				Text:  `ENV{INTERFACE}=="vxlan0", RUN+="/usr/sbin/ethtool -K vxlan0 tx-checksum-ip-generic off"`,
				Match: detect.DeviceMatch{Names: []string{"vxlan0"}}, Settings: []detect.FeatureSetting{{Feature: detect.FeatureTxChecksumGeneric}}}}
		}, []string{detect.OwnerUdevRule, "/etc/udev/rules.d/90-flannel.rules", "sed -i '2d'", "--force"}},
		{"unreadable", func(s *detect.Snapshot) {
			s.Ownership.FilesErr = detect.Fail(fmt.Errorf("listing /etc/udev/rules.d: %w", detect.ErrPermission))
		}, []string{detect.OwnerUnknown, "permission denied", "--force"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			n.et.setRequested(t, "vxlan0", map[string]bool{detect.FeatureTxChecksumGeneric: false})
			s := n.snapshot(t)
			s.Tunnels.Devices[0].Features = detect.Features{State: map[string]bool{detect.FeatureTxChecksumGeneric: false}}
			tt.set(s)
			res := rules.Evaluate(s, rules.DefaultConfig())
			p := Propose(s, res.Findings, PlanOptions{Rules: []string{rules.TunnelTxChecksumOff}})
			if len(p.Changes) != 1 || p.Approved() != nil {
				t.Fatalf("plan = %+v", summarize(p))
			}
			for _, want := range tt.want {
				if !strings.Contains(p.Changes[0].Refused, want) {
					t.Errorf("refusal %q does not mention %q", p.Changes[0].Refused, want)
				}
			}
		})
	}
}
