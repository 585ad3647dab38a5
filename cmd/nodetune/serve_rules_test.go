package main

import (
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/rules"
)

// TestServeRuleFlags: serve takes --rule and --exclude-rule for
// remediation, checked as fix checks --rule: only rules nodetune fixes by
// itself.
func TestServeRuleFlags(t *testing.T) {
	base := serveFlags{mode: "remediate", interval: 30 * time.Second, window: time.Second, backoff: daemon.DefaultBackoff,
		listen: []string{defaultListen}, maxConns: defaultMaxConns, stateDir: t.TempDir()}
	ok := base
	ok.rules = []string{rules.TunnelTxChecksumOff}
	ok.excludeRules = []string{rules.SoftnetDrops}
	if err := ok.check(); err != nil {
		t.Errorf("valid rules refused: %v", err)
	}
	for _, bad := range []serveFlags{
		func() serveFlags { f := base; f.rules = []string{"no-such-rule"}; return f }(),
		func() serveFlags { f := base; f.excludeRules = []string{"no-such-rule"}; return f }(),
	} {
		if err := bad.check(); err == nil || !strings.Contains(err.Error(), "no-such-rule") {
			t.Errorf("check(%v, %v) = %v", bad.rules, bad.excludeRules, err)
		}
	}
	cmd := newServeCmd(&globals{})
	for _, name := range []string{"rule", "exclude-rule"} {
		if cmd.Flags().Lookup(name) == nil {
			t.Errorf("serve has no --%s", name)
		}
	}
}
