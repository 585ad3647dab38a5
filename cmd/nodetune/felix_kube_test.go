package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodetune/nodetune/kube/kubetest"
	"github.com/nodetune/nodetune/report"
	"github.com/nodetune/nodetune/rules"
)

// ownsOffloadCommand runs doctor over a fixture and returns the command of
// its cni-owns-offload finding.
func ownsOffloadCommand(t *testing.T, scenario string) string {
	t.Helper()
	js, _ := runFixture(t, filepath.Join("..", "..", "testdata", "nodes", scenario), "doctor", "-o", "json")
	var doc report.Document
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range doc.Findings {
		if f.Rule == rules.CNIOwnsOffload {
			return f.Fix.Command
		}
	}
	t.Fatalf("%s: no %s finding", scenario, rules.CNIOwnsOffload)
	return ""
}

// TestFelixFixAgainstAPIServer runs the durable fix doctor prints for
// Calico, as a person would paste it into a shell, against a real API
// server with Calico's FelixConfiguration CRD: it creates node.<name>
// where it does not exist, sets featureDetectOverride to a value Calico's
// validation accepts, keeps the object's other settings when run again,
// and, where calico-node's environment set the override, carries its keys
// into node.<name> and removes the variable from the DaemonSet.
func TestFelixFixAgainstAPIServer(t *testing.T) {
	c := kubetest.ForTest(t)
	dir := t.TempDir()
	kubectl := kubetest.Tool(t, "kubectl")
	kubeconfig, err := c.Kubeconfig(dir, "", c.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	// kubectl through a kubeconfig of this test's own.
	k := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	crd, err := filepath.Abs(filepath.Join("testdata", "felixconfiguration-crd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	k("apply", "-f", crd)
	k("wait", "--for", "condition=established", "--timeout=60s", "crd/felixconfigurations.crd.projectcalico.org")
	apply := func(manifest string) {
		t.Helper()
		cmd := exec.Command(kubectl, "--kubeconfig="+kubeconfig, "apply", "-f", "-")
		cmd.Stdin = strings.NewReader(manifest)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kubectl apply: %v\n%s", err, out)
		}
	}
	apply(`{"apiVersion":"crd.projectcalico.org/v1","kind":"FelixConfiguration","metadata":{"name":"default"},` +
		`"spec":{"featureDetectOverride":"SNATFullyRandom=false,ChecksumOffloadBroken=true"}}`)
	run := func(command string) {
		t.Helper()
		sh := exec.Command("sh", "-ec", command)
		sh.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+filepath.Dir(kubectl)+":"+os.Getenv("PATH"))
		if out, err := sh.CombinedOutput(); err != nil {
			t.Fatalf("the fix failed: %v\n%s\n%s", err, command, out)
		}
	}
	override := func(name string) string {
		t.Helper()
		return k("get", "felixconfiguration", name, "-o", "jsonpath={.spec.featureDetectOverride}")
	}

	t.Run("operator install, no node.<name> yet", func(t *testing.T) {
		command := ownsOffloadCommand(t, "calico-offload-off")
		run(command)
		if got := override("node.worker-1"); got != "ChecksumOffloadBroken=false" {
			t.Errorf("node.worker-1's featureDetectOverride = %q", got)
		}
		if got := override("default"); got != "SNATFullyRandom=false,ChecksumOffloadBroken=true" {
			t.Errorf("the fix changed default: %q", got)
		}
		k("patch", "felixconfiguration", "node.worker-1", "--type", "merge", "-p", `{"spec":{"logSeverityScreen":"Debug"}}`)
		run(command)
		if got := k("get", "felixconfiguration", "node.worker-1", "-o", "jsonpath={.spec.logSeverityScreen}"); got != "Debug" {
			t.Errorf("running the fix again lost node.worker-1's other settings: logSeverityScreen = %q", got)
		}
	})

	t.Run("manifest install with the variable set", func(t *testing.T) {
		apply(`{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"calico-node","namespace":"kube-system"},"spec":{` +
			`"selector":{"matchLabels":{"k8s-app":"calico-node"}},"template":{"metadata":{"labels":{"k8s-app":"calico-node"}},"spec":{` +
			`"containers":[{"name":"calico-node","image":"calico/node:v3.28.0","env":[{"name":"CLUSTER_TYPE","value":"k8s,bgp"},` +
			`{"name":"FELIX_FEATUREDETECTOVERRIDE","value":"SNATFullyRandom=false,ChecksumOffloadBroken=true"}]}]}}}}`)
		run(ownsOffloadCommand(t, "calico-manifest-env"))
		if got := override("node.worker-2"); got != "SNATFullyRandom=false,ChecksumOffloadBroken=false" {
			t.Errorf("node.worker-2's featureDetectOverride = %q", got)
		}
		env := k("-n", "kube-system", "get", "daemonset", "calico-node", "-o", "jsonpath={.spec.template.spec.containers[0].env[*].name}")
		if strings.Contains(env, "FELIX_FEATUREDETECTOVERRIDE") || !strings.Contains(env, "CLUSTER_TYPE") {
			t.Errorf("calico-node's env after the fix: %s", env)
		}
	})
}
