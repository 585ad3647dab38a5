package rules

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
)

func conntrackNode(release string, d detect.ConntrackCounters) *detect.Snapshot {
	s := node(release)
	s.Conntrack = detect.Conntrack{Present: true, Count: 100_000, Max: 262144, Delta: d, Totals: d}
	return s
}

// TestConntrackOverTime: a table below the warning level whose early_drop
// or drop rose overflowed between samples; only early_drop, which counts
// nothing but a full table, makes the raise automatic.
func TestConntrackOverTime(t *testing.T) {
	for _, tt := range []struct {
		name string
		d    detect.ConntrackCounters
		want []string
	}{
		{"quiet", detect.ConntrackCounters{}, nil},
		{"early drops below the warning level", detect.ConntrackCounters{EarlyDrop: 40},
			[]string{"conntrack-near-full conntrack warning auto=true"}},
		{"drops without early drops", detect.ConntrackCounters{Drop: 7},
			[]string{"conntrack-near-full conntrack warning auto=false"}},
		{"drops that lost insert clashes", detect.ConntrackCounters{Drop: 3, InsertFailed: 3},
			[]string{"conntrack-insert-failed conntrack warning auto=false"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := Evaluate(conntrackNode("6.1.0", tt.d), DefaultConfig())
			if diff := cmp.Diff(tt.want, fired(r)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestInsertFailedExplanationFollowsTheKernel: from 5.6 the kernel
// resolves the DNS A/AAAA clash itself, so insert_failed is not blamed on
// it; before 5.6 it is.
func TestInsertFailedExplanationFollowsTheKernel(t *testing.T) {
	for _, tt := range []struct {
		name    string
		release string
		counted bool
		dns     bool
		settle  bool
	}{
		{"6.1 with clash_resolve counted", "6.1.0", true, false, false},
		{"5.6 before the column", "5.6.13", false, false, false},
		{"4.19 upstream", "4.19.123", false, true, false},
		{"a 4.18 distribution kernel", "4.18.0-553.el8_10.x86_64", false, true, true},
		{"a 4.18 distribution kernel that counts clash_resolve", "4.18.0-553.el8_10.x86_64", true, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := conntrackNode(tt.release, detect.ConntrackCounters{InsertFailed: 5, Drop: 5, ClashResolve: 9})
			s.Conntrack.ClashCounted = tt.counted
			r := Evaluate(s, DefaultConfig())
			if len(r.Findings) != 1 {
				t.Fatalf("got %v", fired(r))
			}
			f := r.Findings[0]
			if dns := strings.Contains(f.Summary, "DNS"); dns != tt.dns {
				t.Errorf("summary %q: blames DNS = %v, want %v", f.Summary, dns, tt.dns)
			}
			if settle := strings.Contains(f.Explanation, "clashres"); settle != tt.settle {
				t.Errorf("explanation %q: says what settles it = %v, want %v", f.Explanation, settle, tt.settle)
			}
			hasClash := false
			for _, e := range f.Evidence {
				hasClash = hasClash || e.Name == "clash_resolve_delta" && e.Value == "9"
			}
			if hasClash != tt.counted {
				t.Errorf("evidence %v: clash_resolve_delta shown = %v, want %v", f.Evidence, hasClash, tt.counted)
			}
		})
	}
}

// TestConntrackOwnerFollowsKubeProxy: kube-proxy owns nf_conntrack_max
// only where it would lower a raise.
func TestConntrackOwnerFollowsKubeProxy(t *testing.T) {
	zero := int32(0)
	for _, tt := range []struct {
		name  string
		kp    detect.KubeProxy
		owner bool
	}{
		{"1.30 lowers a raise at restart", detect.KubeProxy{Running: true, Version: detect.KubeVersion{Major: 1, Minor: 30, Git: "v1.30.4"}}, true},
		{"unknown version is taken to lower", detect.KubeProxy{Running: true}, true},
		{"1.36 no longer lowers", detect.KubeProxy{Running: true, Version: detect.KubeVersion{Major: 1, Minor: 36, Git: "v1.36.0"}}, false},
		{"maxPerCore 0 leaves it alone", detect.KubeProxy{Running: true, Version: detect.KubeVersion{Major: 1, Minor: 30, Git: "v1.30.4"},
			Config: &detect.KubeProxyConfig{ConntrackMaxPerCore: &zero}}, false},
		{"no kube-proxy", detect.KubeProxy{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := conntrackNode("6.1.0", detect.ConntrackCounters{})
			s.Conntrack.Count = 260000
			tt.kp.NATRules, tt.kp.SyncSeconds = -1, -1
			s.KubeProxy = tt.kp
			r := Evaluate(s, DefaultConfig())
			var f *Finding
			for i := range r.Findings {
				if r.Findings[i].Rule == ConntrackNearFull {
					f = &r.Findings[i]
				}
			}
			if f == nil {
				t.Fatalf("no conntrack-near-full in %v", fired(r))
			}
			if (f.Owner != nil) != tt.owner {
				t.Errorf("owner %+v, want owner=%v", f.Owner, tt.owner)
			}
		})
	}
}

// TestConntrackOwnerKeepsWhyNotAutomatic: naming kube-proxy as the owner
// does not wipe out why the raise is not automatic.
func TestConntrackOwnerKeepsWhyNotAutomatic(t *testing.T) {
	s := conntrackNode("6.1.0", detect.ConntrackCounters{})
	s.Conntrack.Count = 260000
	s.KubeProxy = detect.KubeProxy{Running: true, NATRules: -1, SyncSeconds: -1}
	s.Memory.Err = detect.Fail(detect.ErrPermission)
	r := Evaluate(s, DefaultConfig())
	for _, f := range r.Findings {
		if f.Rule != ConntrackNearFull {
			continue
		}
		if f.Fix.Auto || f.Owner == nil {
			t.Fatalf("auto=%v owner=%v, want a manual fix with kube-proxy as owner", f.Fix.Auto, f.Owner)
		}
		if !strings.Contains(f.Fix.Manual, "memory size unreadable") || !strings.Contains(f.Fix.Manual, "kube-proxy") {
			t.Errorf("manual %q lacks why it is not automatic or the owner", f.Fix.Manual)
		}
		return
	}
	t.Fatalf("no %s in %v", ConntrackNearFull, fired(r))
}
