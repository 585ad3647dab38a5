// Package kube makes nodetune visible to Kubernetes: it keeps the
// NetworkPerformanceDegraded condition on the Node that nodetune runs on,
// records events on that Node for the remediations it makes, and reads the
// nodetune.io/mode label that overrides the DaemonSet's mode for one node.
//
// It only acts when nodetune runs in a cluster (in-cluster configuration) or
// is given a kubeconfig; RESTConfig returns ErrNoCluster otherwise, and the
// caller then runs exactly as on a plain host.
package kube
