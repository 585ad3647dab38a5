package main

// What other nodes reported about this node's tunnel packets, for doctor:
// with --kubeconfig, or in a pod with a node name, doctor reads the
// TunnelChecksumErrors Events on its Node once, or says it could not.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/kube"
)

// doctorReportTimeout bounds doctor's read of the reports.
const doctorReportTimeout = 10 * time.Second

// registerDoctor adds doctor's Kubernetes flags, the same as serve's.
func (k *kubeFlags) registerDoctor(fs *pflag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file of the cluster, to read what other nodes reported about this node's tunnel packets; empty uses the in-cluster configuration when running in a pod with a node name")
	fs.StringVar(&k.nodeName, "kube.node-name", "", "this node's Node name (default $NODE_NAME, else, with --kubeconfig, the host name)")
}

// addDoctorReports fills s.UDP.Reported when doctor runs in a cluster: the
// reports, or why they could not be read. Outside one it leaves it nil.
func addDoctorReports(ctx context.Context, k kubeFlags, s *detect.Snapshot) {
	name := k.nodeName
	if name == "" {
		name = os.Getenv("NODE_NAME")
	}
	if name == "" && k.kubeconfig == "" {
		return
	}
	cfg, err := kube.RESTConfig(k.kubeconfig)
	if errors.Is(err, kube.ErrNoCluster) {
		return
	}
	if name == "" {
		name, _ = os.Hostname()
	}
	if err != nil {
		s.UDP.Reported = &detect.ChecksumReports{Node: name, Err: detect.Fail(fmt.Errorf("cannot read the Events: %w", err))}
		return
	}
	ev, err := kube.NewChecksumEvents(cfg, name, nil)
	if err != nil {
		s.UDP.Reported = &detect.ChecksumReports{Node: name, Err: detect.Fail(fmt.Errorf("cannot read the Events: %w", err))}
		return
	}
	ctx, cancel := context.WithTimeout(ctx, doctorReportTimeout)
	defer cancel()
	s.UDP.Reported = ev.Reports(ctx)
}
