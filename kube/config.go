package kube

import (
	"errors"
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrNoCluster means nodetune is neither running in a cluster nor given a
// kubeconfig, so there is no API server to report to.
var ErrNoCluster = errors.New("not running in a Kubernetes cluster and no kubeconfig given")

// RESTConfig returns the client configuration from the kubeconfig file at
// path, or the in-cluster configuration when path is empty. Without either
// it returns ErrNoCluster. The KUBECONFIG environment variable is
// deliberately not consulted: an operator's shell must not turn a plain
// host run into one that writes to a cluster.
func RESTConfig(path string) (*rest.Config, error) {
	if path != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("reading kubeconfig %s: %w", path, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if errors.Is(err, rest.ErrNotInCluster) {
		return nil, ErrNoCluster
	}
	if err != nil {
		return nil, fmt.Errorf("reading the in-cluster configuration: %w", err)
	}
	return cfg, nil
}
