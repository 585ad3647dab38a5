package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/exporter"
	"github.com/nodetune/nodetune/kube"
	"github.com/nodetune/nodetune/kube/kubetest"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/tune"
)

// TestKubeOutputReactsToEachCycle: the Node's condition follows a cycle
// as soon as the daemon publishes it, not at the next tick of a poll (the
// old one-second poll of the exporter's state could not pass the bound),
// and each cycle published in turn is written.
func TestKubeOutputReactsToEachCycle(t *testing.T) {
	c := kubetest.ForTest(t)
	ctx := context.Background()
	const node = "outputs-node"
	c.CreateNode(t, node)
	path, err := c.Kubeconfig(t.TempDir(), "", c.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := kube.RESTConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	rep, err := kube.NewReporter(cfg, node, kube.Options{Log: log, SyncTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h := newKubeHook(rep, log, kube.ModeObserve)
	defer h.close()

	condition := func() (corev1.NodeCondition, error) {
		n, err := c.Admin.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return corev1.NodeCondition{}, err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == kube.ConditionType {
				return cond, nil
			}
		}
		return corev1.NodeCondition{}, fmt.Errorf("no %s condition", kube.ConditionType)
	}
	// within waits for the condition's reason, well under the second the
	// old poll took, and fails the test past the bound.
	const bound = 600 * time.Millisecond
	within := func(reason string) {
		t.Helper()
		start := time.Now()
		for {
			cond, err := condition()
			if err == nil && cond.Reason == reason {
				t.Logf("condition %s after %s", reason, time.Since(start).Round(time.Millisecond))
				return
			}
			if time.Since(start) > bound {
				t.Fatalf("condition %+v (err %v) %s after the cycle; want reason %s", cond, err, bound, reason)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	off := rules.Finding{Rule: rules.TunnelTxChecksumOff, Subject: "flannel.1", Severity: rules.Warning, Summary: "tx checksum offload is off"}
	h.Publish(&daemon.Cycle{Snapshot: &detect.Snapshot{}, Result: rules.Result{Findings: []rules.Finding{off}}})
	within("TunnelTxChecksumOff")
	h.Publish(&daemon.Cycle{Snapshot: &detect.Snapshot{}})
	within(kube.ReasonNoDegradation)
}

// TestPromOutput: the Prometheus output serves each published cycle and
// counts each remediation step, as the daemon hands them over.
func TestPromOutput(t *testing.T) {
	exp := exporter.New("test")
	p := promOutput{exp}
	s := &detect.Snapshot{}
	p.Publish(&daemon.Cycle{Snapshot: s, Throughput: []daemon.Throughput{{Path: "tunnel-offload-on", BitsPerSecond: 5e9}}})
	st := exp.State()
	if st == nil || st.Snapshot != s || len(st.Throughput) != 1 || st.Throughput[0] != (exporter.Throughput{Path: "tunnel-offload-on", BitsPerSecond: 5e9}) {
		t.Fatalf("state after Publish: %+v", st)
	}
	p.Remediated(&daemon.Remediation{
		Outcomes: []daemon.Outcome{{Rule: rules.TunnelTxChecksumOff, Subject: "flannel.1", Action: "apply", Result: "verified", Ok: true, Wrote: true}},
		Reverted: []daemon.Holding{{Rule: rules.TunnelTxChecksumOff, Subject: "flannel.1"}},
		State:    &daemon.RemediationState{JournalOK: true, Owned: 2},
	})
	families, err := exp.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[mf.GetName()] += m.GetCounter().GetValue()
			case m.GetGauge() != nil && len(m.GetLabel()) == 0:
				got[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	for name, want := range map[string]float64{
		"nodetune_remediations_total":          1,
		"nodetune_remediation_conflicts_total": 1,
		"nodetune_journal_ok":                  1,
		"nodetune_remediation_settings_owned":  2,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}

// TestPromOutputCountsRefusalsByReason: a refused change is counted under
// tune's reason for it, as the reason label.
func TestPromOutputCountsRefusalsByReason(t *testing.T) {
	exp := exporter.New("test")
	p := promOutput{exp}
	p.Remediated(&daemon.Remediation{Outcomes: []daemon.Outcome{
		{Rule: rules.TunnelTxChecksumOff, Subject: "vxlan.calico", Action: tune.ActionApply, Result: tune.Refused, Reason: tune.ReasonOwner},
		{Rule: rules.TunnelTxChecksumOff, Subject: "vxlan.calico", Action: tune.ActionApply, Result: tune.Refused, Reason: tune.ReasonOwner},
		{Rule: rules.SoftnetDrops, Subject: "node", Action: tune.ActionApply, Result: tune.Refused, Reason: tune.ReasonHeld},
		{Rule: rules.SoftnetDrops, Subject: "node", Action: tune.ActionApply, Result: tune.Verified, Ok: true, Wrote: true},
	}})
	want := `# HELP nodetune_remediation_refusals_total ` + refusalsHelp(t, exp) + `
# TYPE nodetune_remediation_refusals_total counter
nodetune_remediation_refusals_total{reason="held",rule="softnet-drops"} 1
nodetune_remediation_refusals_total{reason="owner",rule="tunnel-tx-checksum-off"} 2
`
	if err := testutil.GatherAndCompare(exp.Registry(), strings.NewReader(want), "nodetune_remediation_refusals_total"); err != nil {
		t.Error(err)
	}
}

// refusalsHelp is the help text the exporter gives the refusals counter.
func refusalsHelp(t *testing.T, exp *exporter.Exporter) string {
	t.Helper()
	families, err := exp.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == "nodetune_remediation_refusals_total" {
			return mf.GetHelp()
		}
	}
	t.Fatal("no nodetune_remediation_refusals_total")
	return ""
}
