package main

import (
	"os/exec"
	"strings"
	"testing"
)

// heavyPackages are packages the nodetune binary must not link. Each is
// mapped at start by every command, cluster or not, and most of a Go
// binary's mapped pages end up resident (docs/serve.md, "Footprint"):
// k8s.io/api's packages register every type of their group in init, so
// linking core/v1 for one Node links all of core/v1 (3 MiB); the
// generated clientset links every group; client-go's REST client and
// apimachinery's scheme, codecs and informers were the rest of the gap to
// node_exporter (kube has a client of its own on net/http instead), and
// klog came with them.
var heavyPackages = []string{"k8s.io/api/", "k8s.io/client-go/", "k8s.io/apimachinery/", "k8s.io/klog/"}

// TestBinaryLinksNoAPITypes: the kube package declares the few API fields
// it uses instead of importing k8s.io/api, talks to the API server through
// its own client instead of client-go, and nothing else brings either in.
func TestBinaryLinksNoAPITypes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	n := 0
	for p := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		n++
		for _, heavy := range heavyPackages {
			if strings.HasPrefix(p, heavy) {
				t.Errorf("nodetune links %s", p)
			}
		}
	}
	if n < 100 {
		t.Fatalf("go list -deps named only %d packages", n)
	}
}
