package main

import (
	"github.com/nodetune/nodetune/bench"
	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/tune"
)

// verifyCases are what verifying a change measures: the CNI tunnel, the
// path the change should speed up, and the underlay beside it, which tells
// a tunnel that stopped carrying traffic from a peer that is gone. Only the
// send direction: this node's tx offload acts on what it sends.
var verifyCases = []string{detect.PeerCaseHost, detect.PeerCaseTunnel}

// newVerifyMeasurer is the peer measurer that verifies changes made to
// raise throughput: bench --peer's client, limited to the cases above,
// from this node to the peer, authenticated with the token in tokenFile;
// device names the CNI tunnel ("" picks as bench does), and caFile, when
// set, verifies an HTTPS responder.
func newVerifyMeasurer(g *globals, tokenFile, device, caFile string) (tune.MeasureFunc, error) {
	tc, err := peerTLS(caFile)
	if err != nil {
		return nil, err
	}
	c, err := bench.NewPeerClient(bench.PeerOptions{
		TokenFile: tokenFile, Tunnels: g.nodeTunnels, Device: device, TLS: tc, ProcFS: g.paths.ProcFS, Log: g.log,
		Cases: verifyCases, Directions: []string{detect.PeerSend},
	})
	if err != nil {
		return nil, err
	}
	return c.Measure, nil
}
