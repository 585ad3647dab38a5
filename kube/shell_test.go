package kube

import (
	"os"
	"os/exec"
	"path/filepath"
)

// shellRun runs line with sh, kubectl (the program at kubectl) first in
// PATH and KUBECONFIG set, and returns its combined output.
func shellRun(line, kubectl, kubeconfig string) (string, error) {
	cmd := exec.Command("sh", "-c", line)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(kubectl)+":"+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
