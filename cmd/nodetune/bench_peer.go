package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nodetune/nodetune/bench"
	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/peerstate"
)

// peerBenchFlags are the options of `nodetune bench --peer`.
type peerBenchFlags struct {
	addr      string
	tokenFile string
	direction string
	caFile    string
	stateDir  string
	vni, port int
	cases     []string
}

func (p *peerBenchFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&p.addr, "peer", "", "measure between this node and the node whose nodetune serve --peer.enable answers at HOST[:PORT] (default port 9849), over the real underlay, instead of a throwaway testbed")
	fs.StringVar(&p.tokenFile, "peer.token-file", "", "file holding the token the peer's responder expects")
	fs.StringVar(&p.direction, "direction", "both", "with --peer: send (this node to the peer), receive, or both")
	fs.StringVar(&p.caFile, "peer.tls-ca-file", "", "with --peer: talk HTTPS to the responder, verifying it with this CA bundle")
	fs.StringSliceVar(&p.cases, "peer.cases", nil, "with --peer: the cases to measure, of host, tunnel, tunnel-offload-on, tunnel-offload-off (default all four)")
	fs.StringVar(&p.stateDir, "state-dir", defaultStateDir, "with --peer: where the measurement is kept for doctor and the rules (as serve's schedule keeps its own); empty keeps nothing")
	fs.IntVar(&p.vni, "peer.tunnel-vni", bench.DefaultPeerVNI, "with --peer: the temporary tunnel's VNI")
	fs.IntVar(&p.port, "peer.tunnel-port", bench.DefaultPeerTunnelPort, "with --peer: the temporary tunnel's UDP port (the underlay's firewall must pass it between the nodes)")
}

// options turns the flags into a measurer's options.
func (p peerBenchFlags) options(g *globals, f benchFlags, streamsSet bool) (bench.PeerOptions, error) {
	o := bench.PeerOptions{
		TokenFile: p.tokenFile, Tunnels: g.nodeTunnels, Device: f.device,
		Duration: f.duration, Warmup: f.warmup, VNI: p.vni, Port: p.port,
		ProcFS: g.paths.ProcFS, Log: g.log, Cases: p.cases,
	}
	if streamsSet {
		o.Streams = f.streams
	}
	switch p.direction {
	case "both":
		o.Directions = []string{detect.PeerSend, detect.PeerReceive}
	case detect.PeerSend, detect.PeerReceive:
		o.Directions = []string{p.direction}
	default:
		return o, fmt.Errorf("--direction: want send, receive or both, got %q", p.direction)
	}
	switch {
	case p.tokenFile == "":
		return o, errors.New("--peer needs --peer.token-file")
	case f.output != "text" && f.output != "json":
		return o, fmt.Errorf("-o: want text or json, got %q", f.output)
	case p.vni < 1 || p.vni >= 1<<24:
		return o, fmt.Errorf("--peer.tunnel-vni: want 1 to %d", 1<<24-1)
	case p.port < 1024 || p.port > 65535:
		return o, errors.New("--peer.tunnel-port: want 1024 to 65535")
	}
	tc, err := peerTLS(p.caFile)
	o.TLS = tc
	return o, err
}

// peerTLS is the TLS configuration that verifies peers' responders with
// the CA bundle in caFile; nil (plain HTTP) when caFile is empty.
func peerTLS(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--peer.tls-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--peer.tls-ca-file: no certificate in %s", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// runPeerBench is `nodetune bench --peer`.
func runPeerBench(cmd *cobra.Command, g *globals, f benchFlags) error {
	o, err := f.peer.options(g, f, cmd.Flags().Changed("streams"))
	if err != nil {
		return err
	}
	c, err := bench.NewPeerClient(o)
	if err != nil {
		return err
	}
	res, err := c.Run(cmd.Context(), f.peer.addr)
	if err != nil {
		return &exitError{code: exitFailure, err: explainPeerBench(err)}
	}
	if f.peer.stateDir != "" {
		// The measurement is evidence about this node's tunnel: keep it
		// where doctor, serve and fix read it. A node where it cannot be
		// kept (no write access) still gets the figures printed.
		if err := peerstate.Save(f.peer.stateDir, res.Measurement()); err != nil {
			g.log.Warn("the measurement is not kept for doctor and the rules", "err", err)
		}
	}
	return writeBenchResult(cmd.OutOrStdout(), f.output, res, func(w io.Writer) error { return bench.WritePeerText(w, res) })
}

// explainPeerBench says what a failed peer measurement lacked.
func explainPeerBench(err error) error {
	switch {
	case errors.Is(err, bench.ErrBusy):
		return fmt.Errorf("a measurement already runs on this node or on the peer; try again later: %w", err)
	case errors.Is(err, detect.ErrPermission):
		return fmt.Errorf("the temporary tunnel needs CAP_NET_ADMIN: %w", err)
	}
	return fmt.Errorf("peer measurement failed: %w", err)
}
