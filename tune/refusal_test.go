package tune

import (
	"testing"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// TestOffloadGateReasons: the offload gate refuses as unknown what it
// could not check (the kernel release unreadable, a kernel whose fix status
// is unknown, the checksum counters unreadable) and as gate what the
// evidence rules out, so the refusals metric tells the two apart.
func TestOffloadGateReasons(t *testing.T) {
	release := func(r string) func(*detect.Snapshot) {
		return func(s *detect.Snapshot) {
			v, _ := detect.ParseRelease(r)
			s.Kernel = detect.Kernel{Release: r, Version: v}
		}
	}
	tests := []struct {
		name string
		edit func(*detect.Snapshot)
		want Reason
	}{
		{"kernel unreadable", func(s *detect.Snapshot) { s.Kernel = detect.Kernel{Err: detect.Fail(detect.ErrPermission)} }, ReasonUnknown},
		{"distribution kernel, fix status unknown", release("5.4.0-150-generic"), ReasonUnknown},
		{"release candidate, fix status unknown", release("5.7.0-rc2"), ReasonUnknown},
		{"kernel without the fix", release("5.4.40"), ReasonGate},
		{"counters unreadable", func(s *detect.Snapshot) { s.UDP.Err = detect.Fail(detect.ErrNotSupported) }, ReasonUnknown},
		{"IPv6 counter unreadable", func(s *detect.Snapshot) { s.UDP.Err6 = detect.Fail(detect.ErrPermission) }, ReasonUnknown},
		{"bad checksums arriving", func(s *detect.Snapshot) { s.UDP.Delta = 3 }, ReasonGate},
	}
	n := newNode(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := n.snapshot(t)
			tt.edit(s)
			p := Propose(s, []rules.Finding{finding(rules.Change{Kind: rules.ChangeFeature, Target: "vxlan0",
				Setting: detect.FeatureTxChecksumGeneric, Value: on})}, PlanOptions{})
			if len(p.Changes) != 1 {
				t.Fatalf("plan: %v", p.Changes)
			}
			if c := p.Changes[0]; c.Reason != tt.want {
				t.Errorf("refused as %q (%s); want %s", c.Reason, c.Refused, tt.want)
			}
		})
	}
}
