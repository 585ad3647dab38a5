package kube

import (
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/rules"
)

func finding(rule string, sev rules.Severity, loss float64) rules.Finding {
	return rules.Finding{
		Rule:     rule,
		Severity: sev,
		Subject:  "subj",
		Summary:  rule + " summary",
		Impact:   rules.Impact{ThroughputLossRatio: loss},
	}
}

func TestCondition(t *testing.T) {
	healthy := NodeCondition{
		Type: ConditionType, Status: ConditionFalse,
		Reason: ReasonNoDegradation, Message: MessageNoDegradation,
	}
	degraded := func(reason, message string) NodeCondition {
		return NodeCondition{Type: ConditionType, Status: ConditionTrue, Reason: reason, Message: message}
	}
	tests := []struct {
		name     string
		findings []rules.Finding
		min      rules.Severity
		want     NodeCondition
	}{
		{"no findings", nil, rules.Warning, healthy},
		{"only info", []rules.Finding{finding("cpu-steal-high", rules.Info, 0)}, rules.Warning, healthy},
		{"info counts when asked", []rules.Finding{finding("cpu-steal-high", rules.Info, 0)}, rules.Info,
			degraded("CpuStealHigh", "cpu-steal-high on subj; see nodetune's /findings")},
		{"one warning", []rules.Finding{finding("softnet-drops", rules.Warning, 0)}, rules.Warning,
			degraded("SoftnetDrops", "softnet-drops on subj; see nodetune's /findings")},
		{"critical beats warnings before it", []rules.Finding{
			finding("softnet-drops", rules.Warning, 0.5),
			finding("tunnel-tx-checksum-off", rules.Critical, 0.77),
			finding("conntrack-near-full", rules.Warning, 0),
		}, rules.Warning, degraded("TunnelTxChecksumOff", "tunnel-tx-checksum-off on subj; see nodetune's /findings")},
		{"larger loss breaks a tie", []rules.Finding{
			finding("conntrack-near-full", rules.Critical, 0),
			finding("tunnel-tx-checksum-off", rules.Critical, 0.77),
		}, rules.Warning, degraded("TunnelTxChecksumOff", "tunnel-tx-checksum-off on subj; see nodetune's /findings")},
		{"the first wins a full tie", []rules.Finding{
			finding("conntrack-near-full", rules.Critical, 0),
			finding("softnet-drops", rules.Critical, 0),
		}, rules.Warning, degraded("ConntrackNearFull", "conntrack-near-full on subj; see nodetune's /findings")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Condition(tt.findings, tt.min)); diff != "" {
				t.Errorf("Condition() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConditionIgnoresLiveNumbers: two cycles whose findings differ only
// in their numbers (the summary's rates, the estimated loss) give the same
// condition, so the Node is not written; another subject is written.
func TestConditionIgnoresLiveNumbers(t *testing.T) {
	a := rules.Finding{Rule: rules.SoftnetDrops, Severity: rules.Warning, Subject: "softnet",
		Summary: "1523 packets dropped in the softnet backlog in 30s", Impact: rules.Impact{ThroughputLossRatio: 0.02}}
	b := a
	b.Summary = "87 packets dropped in the softnet backlog in 30.01s"
	b.Impact.ThroughputLossRatio = 0.01
	if ca, cb := Condition([]rules.Finding{a}, rules.Warning), Condition([]rules.Finding{b}, rules.Warning); !sameCondition(ca, cb) {
		t.Errorf("numbers alone changed the condition:\n%+v\n%+v", ca, cb)
	}
	c := a
	c.Subject = "eth1"
	if !sameCondition(Condition([]rules.Finding{a}, rules.Warning), Condition([]rules.Finding{c}, rules.Warning)) {
		return
	}
	t.Error("a finding on another subject did not change the condition")
}

func TestReason(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"tunnel-tx-checksum-off", "TunnelTxChecksumOff"},
		{"ipvs-modules-missing", "IpvsModulesMissing"},
		{"kube-proxy-iptables-scale", "KubeProxyIptablesScale"},
		{"remediation-conflict", "RemediationConflict"},
		{"ip6-tunnel", "Ip6Tunnel"},
		{"6to4", "Rule6to4"},
		{"--", "Rule"},
		{"", "Rule"},
		{"a.b/c d", "ABCD"},
	} {
		if got := Reason(tt.in); got != tt.want {
			t.Errorf("Reason(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestReasonCoversCatalog checks every shipped rule maps to a distinct
// reason, so an alert on a reason names one rule.
func TestReasonCoversCatalog(t *testing.T) {
	seen := map[string]string{}
	for _, r := range rules.Catalog() {
		reason := Reason(r.ID)
		if !validReason.MatchString(reason) {
			t.Errorf("rule %s: reason %q is not a valid condition reason", r.ID, reason)
		}
		if other, ok := seen[reason]; ok {
			t.Errorf("rules %s and %s share the reason %q", other, r.ID, reason)
		}
		seen[reason] = r.ID
	}
}

// validReason is the pattern the API server's metav1.Condition validation
// applies to reasons (k8s.io/apimachinery/pkg/apis/meta/v1/validation).
var validReason = regexp.MustCompile(`^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`)

func FuzzReason(f *testing.F) {
	for _, r := range rules.Catalog() {
		f.Add(r.ID)
	}
	f.Add("")
	f.Add("-9x-é")
	f.Fuzz(func(t *testing.T, rule string) {
		if got := Reason(rule); !validReason.MatchString(got) {
			t.Errorf("Reason(%q) = %q, not a valid condition reason", rule, got)
		}
	})
}
