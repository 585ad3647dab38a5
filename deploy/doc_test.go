// Package deploy_test checks nodetune's Kubernetes manifests: that every
// shipped file decodes strictly into the Kubernetes API types, that the
// rendered overlays hold the security context docs/deploy.md promises,
// that the PrometheusRule carries exactly the shipped alerting rules, and,
// against a real API server, that server-side apply accepts every variant
// and that the RBAC is sufficient and minimal.
package deploy_test

import (
	"testing"

	"github.com/nodetune/nodetune/kube/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }
