package kube

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// ErrNoCluster means nodetune is neither running in a cluster nor given a
// kubeconfig, so there is no API server to report to.
var ErrNoCluster = errors.New("not running in a Kubernetes cluster and no kubeconfig given")

// serviceAccountDir is where the kubelet mounts a pod's ServiceAccount
// token and the cluster's CA bundle.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// RESTConfig returns the client configuration from the kubeconfig file at
// path, or the in-cluster configuration when path is empty. Without either
// it returns ErrNoCluster. The KUBECONFIG environment variable is
// deliberately not consulted: an operator's shell must not turn a plain
// host run into one that writes to a cluster.
func RESTConfig(path string) (*Config, error) {
	if path != "" {
		cfg, err := LoadKubeconfig(path)
		if err != nil {
			return nil, fmt.Errorf("reading kubeconfig %s: %w", path, err)
		}
		return cfg, nil
	}
	cfg, err := inClusterConfig(os.Getenv, serviceAccountDir)
	if err != nil && !errors.Is(err, ErrNoCluster) {
		return nil, fmt.Errorf("reading the in-cluster configuration: %w", err)
	}
	return cfg, err
}

// inClusterConfig is the configuration of a pod: the API server's Service
// address from KUBERNETES_SERVICE_HOST and _PORT (getenv), the
// ServiceAccount token in dir (read again when the kubelet rotates it)
// and the CA bundle beside it. Without the address it returns
// ErrNoCluster.
func inClusterConfig(getenv func(string) string, dir string) (*Config, error) {
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, ErrNoCluster
	}
	tokenFile := filepath.Join(dir, "token")
	ts := &tokenSource{file: tokenFile}
	if _, err := ts.get(); err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("reading the cluster's CA bundle: %w", err)
	}
	return &Config{
		Host:            "https://" + net.JoinHostPort(host, port),
		BearerTokenFile: tokenFile,
		CAData:          ca,
	}, nil
}
