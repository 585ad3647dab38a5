// Package deploy_test checks nodetune's Kubernetes manifests: that every
// shipped file decodes strictly into the Kubernetes API types, that the
// rendered overlays hold the security context docs/deploy.md promises,
// that the PrometheusRule carries exactly the shipped alerting rules, and,
// against a real API server, that server-side apply accepts every variant,
// that the test schemas of the Prometheus Operator's kinds refuse a
// misspelt field, and that the RBAC is sufficient and minimal.
package deploy_test

import (
	"os"
	"testing"

	"github.com/nodetune/nodetune/kube/kubetest"
)

func TestMain(m *testing.M) {
	code := kubetest.Run(m)
	removeImages()
	os.Exit(code)
}
