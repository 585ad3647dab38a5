package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/spf13/cobra"

	"github.com/nodetune/nodetune/daemon"
	"github.com/nodetune/nodetune/exporter"
	"github.com/nodetune/nodetune/peerstate"
	"github.com/nodetune/nodetune/rules"
)

func init() { subcommands = append(subcommands, newServeCmd) }

// defaultListen is nodetune's exporter port; docs/serve.md explains the choice.
const defaultListen = ":9848"

// serveFlags are the options of nodetune serve.
type serveFlags struct {
	mode           string
	interval       time.Duration
	window         time.Duration
	debounce       time.Duration
	listen         []string
	webConfig      string
	healthListen   string
	maxConns       int
	rollbackOnExit bool
	force          bool
	rules          []string
	excludeRules   []string
	stateDir       string
	backoff        daemon.Backoff
	benchDuration  time.Duration
	enableBench    bool
	kube           kubeFlags
	peer           peerFlags
	calico         calicoFlags
	verify         verifyFlags
}

func newServeCmd(g *globals) *cobra.Command {
	cfg := rules.DefaultConfig()
	f := serveFlags{backoff: daemon.DefaultBackoff}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Watch this node continuously, export what costs it network performance, and optionally fix it",
		Long: "serve probes the node every --probe.interval, and at once when rtnetlink reports a change to a tunnel\n" +
			"device, judges each snapshot with the same rules as doctor, and serves the result on /metrics\n" +
			"(Prometheus), /findings (doctor's JSON), /healthz and /readyz. A scrape never probes.\n\n" +
			"--mode observe (the default) never writes to the host. --mode remediate applies the automatic fixes\n" +
			"through the same journal and safety rules as nodetune fix, and stops re-applying a fix that another\n" +
			"agent undoes more than --remediation.max-reapplies times in --remediation.window.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			return serve(cmd.Context(), g, f, cfg)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.mode, "mode", "observe", "observe (never writes) or remediate (applies the automatic fixes)")
	fs.DurationVar(&f.interval, "probe.interval", 30*time.Second, "time between full probe cycles")
	fs.DurationVar(&f.window, "probe.window", time.Second, "how long the first snapshot measures rates over; later ones cover the interval")
	fs.DurationVar(&f.debounce, "probe.debounce", 100*time.Millisecond, "how long a link change waits for others before the tunnels are probed again")
	fs.StringSliceVar(&f.listen, "web.listen-address", []string{defaultListen}, "addresses to serve metrics on (repeatable)")
	fs.StringVar(&f.webConfig, "web.config.file", "", "exporter-toolkit web configuration file for TLS and basic auth")
	fs.StringVar(&f.healthListen, "web.health-address", "", "also serve /healthz and /readyz alone on this address, in plain HTTP without the web config's TLS or auth, for the kubelet's probes (the DaemonSet uses 127.0.0.1:9847); empty: off")
	fs.IntVar(&f.maxConns, "web.max-connections", defaultMaxConns, "most connections kept open on the listen addresses; past it the longest-idle one is closed")
	fs.BoolVar(&f.rollbackOnExit, "rollback-on-exit", false, "restore every value nodetune changed when it stops")
	fs.BoolVar(&f.force, "force", false, "in remediate mode, also change settings another agent (Calico Felix, kube-proxy) owns; the back-off still applies")
	fs.StringArrayVar(&f.rules, "rule", nil, "in remediate mode, fix only findings of this rule ID (repeatable); findings of every rule are still exported")
	fs.StringArrayVar(&f.excludeRules, "exclude-rule", nil, "in remediate mode, never fix findings of this rule ID (repeatable)")
	fs.StringVar(&f.stateDir, "state-dir", defaultStateDir, "where the remediation journal lives")
	fs.IntVar(&f.backoff.Max, "remediation.max-reapplies", f.backoff.Max, "re-apply an undone fix at most this many times per window, then stop managing it")
	fs.DurationVar(&f.backoff.Window, "remediation.window", f.backoff.Window, "the window re-applies are counted in")
	fs.BoolVar(&f.enableBench, "web.enable-bench", false, "serve POST /bench, which builds a throwaway testbed and loads the CPU for a few seconds; it needs --peer.token-file and takes the same token (and, in a cluster, a Node's address) as peer measurements, one run at a time")
	fs.DurationVar(&f.benchDuration, "bench.duration", 2*time.Second, "how long POST /bench measures each case")
	f.kube.register(fs)
	f.calico.register(fs, true) // after kube: its --kubeconfig and --kube.node-name are kube's
	f.peer.register(fs)
	f.verify.register(fs)
	ruleFlags(cmd, &cfg)
	return cmd
}

func (f serveFlags) check() error {
	if err := checkRuleIDs(append(slices.Clone(f.rules), f.excludeRules...)); err != nil {
		return err
	}
	switch {
	case f.mode != "observe" && f.mode != "remediate":
		return fmt.Errorf("--mode: want observe or remediate, got %q", f.mode)
	case f.interval < minInterval:
		return fmt.Errorf("--probe.interval is %s; want at least %s", f.interval, minInterval)
	case f.debounce < 0:
		return fmt.Errorf("--probe.debounce must not be negative")
	case f.backoff.Max < 1 || f.backoff.Window <= 0:
		return fmt.Errorf("--remediation.max-reapplies must be at least 1 and --remediation.window positive")
	case len(f.listen) == 0:
		return fmt.Errorf("--web.listen-address: give at least one address")
	case f.maxConns < minConns:
		return fmt.Errorf("--web.max-connections is %d; want at least %d", f.maxConns, minConns)
	}
	if err := f.peer.check(f.enableBench); err != nil {
		return err
	}
	if err := checkWindow("--probe.window", f.window); err != nil {
		return err
	}
	if err := f.verify.check(f.peer.tokenFile); err != nil {
		return err
	}
	if f.peer.enable {
		return checkStateDir(f.stateDir, true) // peer measurements are saved there
	}
	// Remediate mode falls back to observing when the journal cannot be
	// opened (serve.go); a directory that cannot be one is bad usage.
	if f.stateDir == "" || f.mode == "remediate" {
		return checkStateDir(f.stateDir, false)
	}
	return nil
}

// Connection limits of serve's listeners (docs/serve.md, "Connections").
// Prometheus keeps one connection per target, the kubelet one per probe:
// 128 leaves room for many scrapers and people, and bounds what idle
// connections can cost to a few MiB.
const (
	defaultMaxConns = 128
	minConns        = 4
	healthConns     = 16
)

// newHTTPServer is an http.Server with the timeouts and connection limit
// every listener of serve has.
func newHTTPServer(h http.Handler, maxConns int) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: exporter.ReadHeaderTimeout,
		IdleTimeout:       exporter.IdleTimeout,
		ConnState:         exporter.NewConnLimit(maxConns).ConnState,
	}
}

// listenAddress brackets an IPv6 host that lacks them, so that the
// DaemonSet's --web.listen-address=$(NODE_IP):9848 also works on an
// IPv6 node: "fd00::5:9848" becomes "[fd00::5]:9848". Anything else is
// returned as it is.
func listenAddress(a string) string {
	if _, _, err := net.SplitHostPort(a); err == nil || strings.HasPrefix(a, "[") {
		return a
	}
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return a
	}
	if ip := net.ParseIP(a[:i]); ip == nil || ip.To4() != nil {
		return a
	}
	return net.JoinHostPort(a[:i], a[i+1:])
}

func serve(ctx context.Context, g *globals, f serveFlags, cfg rules.Config) error {
	var felix *felixAPI
	switch {
	case f.calico.cooperate && f.mode == "remediate":
		api, err := openFelixAPI(ctx, f.kube.kubeconfig)
		if err != nil {
			g.log.Error("--calico.cooperate: the FelixConfigurations cannot be reached; nodetune does not cooperate with Felix", "err", err)
			break
		}
		if api.configs.Warning != "" {
			g.log.Warn(api.configs.Warning)
		}
		felix = api
		api.use(g, calicoFlags{nodeName: f.kube.nodeName})
	case f.calico.cooperate:
		g.log.Warn("--calico.cooperate takes effect in --mode remediate only: observe mode writes nothing")
	}
	h, closeHost, err := g.host()
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	defer closeHost()
	h.PeerFile = peerstate.Path(f.stateDir)
	exp := exporter.New(version)
	opts := daemon.Options{
		Host: h, Outputs: []daemon.Publisher{promOutput{exp}}, Rules: cfg,
		Interval: f.interval, Window: f.window, Debounce: f.debounce,
		Subscribe:      daemon.NetlinkSubscriber,
		Backoff:        f.backoff,
		RollbackOnExit: f.rollbackOnExit,
		Log:            g.log,
	}
	var journalErr error
	if f.mode == "remediate" {
		rem, closeRem, err := openRemediator(ctx, g, f, felix)
		switch {
		case err != nil:
			// Exiting would only crash-loop the agent: a corrupt, foreign
			// or locked journal stays so until someone looks at it.
			journalErr = err
			g.log.Error("remediation is off: this agent only observes until the journal is repaired, moved aside or released",
				"state_dir", f.stateDir, "err", err)
			exp.SetRemediation(&exporter.Remediation{JournalOK: false})
		default:
			defer closeRem()
			opts.Remediator = rem
			opts.StateFile = filepath.Join(f.stateDir, daemon.BackoffFile)
		}
	}
	// Kubernetes: node condition, events, mode label (serve_kube.go).
	kh, err := startKube(g, f.kube, f.mode, &opts)
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	defer kh.close()
	if journalErr != nil {
		kh.journalUnusable(f.stateDir, journalErr)
	}
	stopPeers, err := startPeerSchedule(ctx, g, f.peer, f.kube, f.stateDir)
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	defer stopPeers()
	if f.enableBench {
		opts.Bench = benchRunner(exp, f.benchDuration, g.log)
	}
	d, err := daemon.New(opts)
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	// A full cycle takes the interval; three missed ones and the first
	// window mean the loop is stuck (docs/serve.md).
	hopts := exporter.HandlerOptions{Log: g.log, StaleAfter: 3*f.interval + f.window}
	if opts.Bench != nil {
		hopts.Bench = func(ctx context.Context) (any, error) {
			r, err := d.Bench(ctx)
			if errors.Is(err, daemon.ErrBusy) {
				err = exporter.ErrBusy // the HTTP handler answers 429 to it
			}
			return r, err
		}
	}
	handler, err := exp.Handler(hopts)
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The token (and Node address) guard of POST /bench and the peer
	// responder (serve_peer.go).
	if f.enableBench || f.peer.enable {
		gd, err := f.peer.guard(g, f.kube)
		if err != nil {
			return &exitError{code: exitFailure, err: err}
		}
		handler = guardBench(handler, gd)
		stopPeer, err := startPeer(ctx, g, f, gd, cancel)
		if err != nil {
			return &exitError{code: exitFailure, err: err}
		}
		defer stopPeer()
	}
	listen := make([]string, len(f.listen))
	for i, a := range f.listen {
		listen[i] = listenAddress(a)
	}
	srv := newHTTPServer(handler, f.maxConns)
	var health *http.Server
	if f.healthListen != "" {
		// Bound before the metrics listener, so that a bad address fails
		// the start instead of leaving the probes to fail later.
		l, err := net.Listen("tcp", listenAddress(f.healthListen))
		if err != nil {
			return &exitError{code: exitFailure, err: fmt.Errorf("--web.health-address: %w", err)}
		}
		health = newHTTPServer(exp.HealthHandler(hopts), healthConns)
		go func() {
			if err := health.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("serving health checks", "address", f.healthListen, "err", err)
				cancel()
			}
		}()
	}
	webErr := make(chan error, 1)
	go func() {
		webErr <- web.ListenAndServe(srv, &web.FlagConfig{WebListenAddresses: &listen, WebConfigFile: &f.webConfig}, g.log)
		cancel()
	}()
	g.log.Info("nodetune serve started", "version", version, "mode", f.mode, "interval", f.interval, "listen", f.listen)
	runErr := d.Run(ctx)

	shutCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = srv.Shutdown(shutCtx)
	if health != nil {
		_ = health.Shutdown(shutCtx)
	}
	select {
	case err := <-webErr:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return &exitError{code: exitFailure, err: fmt.Errorf("serving HTTP: %w", err)}
		}
	case <-shutCtx.Done():
	}
	if runErr != nil {
		return &exitError{code: exitFailure, err: runErr}
	}
	g.log.Info("nodetune serve stopped")
	return nil
}
