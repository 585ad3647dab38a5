package main

// The peer responder of nodetune serve (docs/bench.md, "Between nodes"):
// with --peer.enable, other nodes' nodetune measure the path to this node
// through a port of its own, and only with the token. The same guard
// protects POST /bench on the metrics port.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
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
	gd.NodeAddress = newNodeAddresses(c.Get, g.log).contains
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

// nodeAddresses caches the addresses of the cluster's Nodes.
type nodeAddresses struct {
	get func(ctx context.Context, path string, q url.Values, out any) error
	log *slog.Logger

	mu    sync.Mutex
	addrs map[netip.Addr]bool
	at    time.Time
}

// How long the list of Nodes is trusted, and how soon an unknown address
// may list them again (a Node that just joined).
const (
	nodeListTTL   = time.Minute
	nodeListRetry = 5 * time.Second
)

func newNodeAddresses(get func(ctx context.Context, path string, q url.Values, out any) error, log *slog.Logger) *nodeAddresses {
	return &nodeAddresses{get: get, log: log}
}

// nodeAddressList is the part of a core/v1 NodeList read here.
type nodeAddressList struct {
	Items []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Status struct {
			Addresses []struct {
				Type    string `json:"type"`
				Address string `json:"address"`
			} `json:"addresses"`
		} `json:"status"`
	} `json:"items"`
}

// contains reports whether a is an InternalIP or ExternalIP of a Node.
func (n *nodeAddresses) contains(ctx context.Context, a netip.Addr) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	age := time.Since(n.at)
	if n.addrs != nil && (age < nodeListTTL && n.addrs[a] || age < nodeListRetry) {
		return n.addrs[a], nil
	}
	var list nodeAddressList
	if err := n.get(ctx, kube.Path("", "v1", "", "nodes", ""), nil, &list); err != nil {
		return false, fmt.Errorf("listing Nodes: %w", err)
	}
	addrs := map[netip.Addr]bool{}
	for _, it := range list.Items {
		for _, ad := range it.Status.Addresses {
			if ad.Type != "InternalIP" && ad.Type != "ExternalIP" {
				continue
			}
			if ip, err := netip.ParseAddr(ad.Address); err == nil {
				addrs[ip.Unmap()] = true
			}
		}
	}
	n.addrs, n.at = addrs, time.Now()
	return addrs[a], nil
}
