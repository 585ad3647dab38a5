package kube

import (
	"strings"

	"github.com/nodetune/nodetune/rules"
)

// ConditionType is the Node condition nodetune keeps. It is untyped, so
// that it compares with the condition type of any client's Node type.
const ConditionType = "NetworkPerformanceDegraded"

// The condition's reason and message when no finding is severe enough.
const (
	ReasonNoDegradation  = "NoDegradation"
	MessageNoDegradation = "nodetune finds nothing that costs this node network performance"
)

// Condition is the NetworkPerformanceDegraded condition for findings: True
// when one is at least min, with the most severe finding's rule ID in
// CamelCase as the reason and a message naming its rule and subject;
// False otherwise. Among equally severe findings the one with the larger
// estimated throughput loss wins, then the first, so the choice is stable
// from one evaluation to the next. The message carries no live numbers (a
// summary's rates and counts change every cycle), so the condition, and
// the Node, change only when the worst finding does. The times are left
// for the caller to set.
func Condition(findings []rules.Finding, min rules.Severity) NodeCondition {
	var top *rules.Finding
	for i := range findings {
		f := &findings[i]
		if f.Severity < min {
			continue
		}
		if top == nil || f.Severity > top.Severity ||
			f.Severity == top.Severity && f.Impact.ThroughputLossRatio > top.Impact.ThroughputLossRatio {
			top = f
		}
	}
	if top == nil {
		return NodeCondition{
			Type:    ConditionType,
			Status:  ConditionFalse,
			Reason:  ReasonNoDegradation,
			Message: MessageNoDegradation,
		}
	}
	return NodeCondition{
		Type:    ConditionType,
		Status:  ConditionTrue,
		Reason:  Reason(top.Rule),
		Message: Message(*top),
	}
}

// Message is the condition message for a finding: its rule ID and subject,
// and where the numbers are, such as "tunnel-tx-checksum-off on
// vxlan.calico; see nodetune's /findings".
func Message(f rules.Finding) string {
	if f.Subject == "" {
		return f.Rule + "; see nodetune's /findings"
	}
	return f.Rule + " on " + f.Subject + "; see nodetune's /findings"
}

// Reason turns a kebab-case rule ID into the CamelCase form a condition
// reason takes: "tunnel-tx-checksum-off" becomes "TunnelTxChecksumOff".
// Characters a reason may not hold are dropped, and a result that would
// not start with a letter gets the prefix "Rule", so any ID gives a valid
// reason.
func Reason(rule string) string {
	var b strings.Builder
	upper := true
	for _, r := range rule {
		switch {
		case r >= 'a' && r <= 'z':
			if upper {
				r -= 'a' - 'A'
			}
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		default:
			upper = true
			continue
		}
		b.WriteRune(r)
		upper = false
	}
	s := b.String()
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		s = "Rule" + s
	}
	return s
}

// sameCondition reports whether a and b say the same thing, whatever their
// times.
func sameCondition(a, b NodeCondition) bool {
	return a.Type == b.Type && a.Status == b.Status && a.Reason == b.Reason && a.Message == b.Message
}

// findCondition returns the condition of type t in cs, or nil.
func findCondition(cs []NodeCondition, t NodeConditionType) *NodeCondition {
	for i := range cs {
		if cs[i].Type == t {
			return &cs[i]
		}
	}
	return nil
}
