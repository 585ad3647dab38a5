package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
)

func TestConflictFinding(t *testing.T) {
	orig := Finding{
		Rule: TunnelTxChecksumOff, Severity: Warning, Subject: "vxlan.calico",
		Impact: Impact{ThroughputLossRatio: 0.77, Source: "published"},
		Fix:    Fix{Command: "ethtool -K vxlan.calico tx-checksum-ip-generic on", Auto: true},
	}
	anon := ConflictFinding(Conflict{Finding: orig, Reverts: 3, Window: 10 * time.Minute})
	if anon.Rule != RemediationConflict || anon.Subject != "vxlan.calico" || anon.Owner != nil || anon.Fix.Auto {
		t.Errorf("conflict finding = %+v", anon)
	}
	if !strings.Contains(anon.Summary, "another agent undid") || !strings.Contains(anon.Summary, "3 times in 10m0s") {
		t.Errorf("summary %q does not say who and how often", anon.Summary)
	}
	if anon.Impact.ThroughputLossRatio != 0.77 {
		t.Errorf("the conflict keeps the original loss; got %v", anon.Impact.ThroughputLossRatio)
	}

	orig.Owner = &detect.Owner{Name: detect.OwnerFelix, Why: "Felix re-applies", DurableFix: detect.FelixOverride}
	felix := ConflictFinding(Conflict{Finding: orig, Reverts: 4, Window: time.Minute})
	if !strings.HasPrefix(felix.Summary, "calico-felix undid") || felix.Fix.Command != detect.FelixOverride {
		t.Errorf("owner not named: summary %q, fix %q", felix.Summary, felix.Fix.Command)
	}
	if felix.Owner == nil || felix.Owner.Name != detect.OwnerFelix {
		t.Errorf("owner = %+v", felix.Owner)
	}
}
