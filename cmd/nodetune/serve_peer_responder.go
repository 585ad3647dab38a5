package main

// The peer responder of nodetune serve (docs/bench.md, "Between nodes"):
// with --peer.enable, other nodes' nodetune measure the path to this node
// through a port of its own, and only with the token. The same guard
// protects POST /bench on the metrics port.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/nodetune/nodetune/bench"
	"github.com/nodetune/nodetune/kube"
)

// defaultPeerListen is the responder's port, next to the exporter's.
const defaultPeerListen = ":9849"

// guard is the protection of the responder and of POST /bench: the token,
// and in a cluster an address of a Node.
func (p peerFlags) guard(g *globals, k kubeFlags) (bench.Guard, error) {
	gd := bench.Guard{TokenFile: p.tokenFile, Log: g.log}
	cfg, err := kube.RESTConfig(k.kubeconfig)
	switch {
	case errors.Is(err, kube.ErrNoCluster):
		g.log.Info("not in a Kubernetes cluster and no --kubeconfig: measurements are admitted by token alone")
		return gd, nil
	case err != nil:
		return gd, fmt.Errorf("the peer responder checks that requests come from Nodes, but cannot reach the API server: %w", err)
	}
	c, err := kube.NewClient(cfg)
	if err != nil {
		return gd, err
	}
	nodes := kube.NewNodeAddresses(c)
	// A Node that left stops being answered within a minute; one that
	// joined is answered within five seconds.
	nodes.TTL, nodes.MissTTL = time.Minute, 5*time.Second
	gd.NodeAddress = nodes.IsNode
	return gd, nil
}

// startPeer starts the responder, if enabled, and returns what stops it.
func startPeer(ctx context.Context, g *globals, f serveFlags, gd bench.Guard, cancel context.CancelFunc) (func(), error) {
	if !f.peer.enable {
		return func() {}, nil
	}
	r, err := bench.NewResponder(bench.ResponderOptions{
		Guard: gd, Tunnels: g.nodeTunnels, Device: f.peer.device, Node: peerNodeName(f.kube),
		ProcFS: g.paths.ProcFS, MaxStreams: f.peer.maxStreams, MaxDuration: f.peer.maxDuration, Log: g.log,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the peer responder: %w", err)
	}
	l, err := net.Listen("tcp", listenAddress(f.peer.listen))
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("--peer.listen-address: %w", err)
	}
	srv := newHTTPServer(r.Handler(), minConns*4)
	srv.WriteTimeout = time.Minute
	listen := []string{f.peer.listen}
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := web.Serve(l, srv, &web.FlagConfig{WebListenAddresses: &listen, WebConfigFile: &f.peer.webConfig}, g.log)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("serving peer measurements", "address", f.peer.listen, "err", err)
			cancel()
		}
	}()
	g.log.Info("answering peer measurements", "listen", f.peer.listen, "tls", f.peer.webConfig != "", "node_check", gd.NodeAddress != nil)
	return func() {
		sctx, done2 := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer done2()
		_ = srv.Shutdown(sctx)
		<-done
		if err := r.Close(); err != nil {
			g.log.Error("ending the peer session", "err", err)
		}
	}, nil
}

// peerNodeName is this node's name for the measurer, if known.
func peerNodeName(k kubeFlags) string {
	if k.nodeName != "" {
		return k.nodeName
	}
	return os.Getenv("NODE_NAME")
}

// guardBench puts gd in front of POST /bench on the metrics handler.
func guardBench(h http.Handler, gd bench.Guard) http.Handler {
	guarded := gd.Wrap(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimSuffix(r.URL.Path, "/") == "/bench" && r.Method == http.MethodPost {
			guarded.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
