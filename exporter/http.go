package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/nodetune/nodetune/report"
)

// ErrBusy is what a BenchFunc returns when a benchmark is already running;
// POST /bench answers it with 429 Too Many Requests.
var ErrBusy = errors.New("a benchmark is already running")

// BenchFunc runs the on-demand benchmark and returns what it measured.
type BenchFunc func(ctx context.Context) (any, error)

// HandlerOptions configure the HTTP endpoints.
type HandlerOptions struct {
	// Log receives errors from the metrics handler; nil discards them.
	Log *slog.Logger
	// Bench, when set, serves POST /bench; without it POST /bench answers
	// 404 with a message saying how to enable it.
	Bench BenchFunc
	// StaleAfter, when positive, makes /healthz fail once the last
	// completed snapshot is older than this, or, before the first, once the
	// exporter is: a probe loop stuck in a hung ioctl or netlink call is
	// then restarted by the liveness probe. Zero keeps /healthz at 200.
	StaleAfter time.Duration
}

// Handler serves /metrics, /healthz, /readyz, /findings (the doctor's JSON
// document for the current state), POST /bench when opts.Bench is set, and
// a landing page at /.
func (e *Exporter) Handler(opts HandlerOptions) (http.Handler, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(e.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
		// A page is about 15 kB: compressing it costs more CPU and, under
		// many concurrent scrapes, more memory (a compressor each) than
		// the bytes it saves.
		DisableCompression: true,
	}))
	e.handleHealth(mux, opts)
	mux.HandleFunc("GET /findings", e.serveFindings)
	links := []web.LandingLinks{
		{Address: "/metrics", Text: "Metrics"},
		{Address: "/findings", Text: "Findings", Description: "what costs this node network performance, as JSON"},
		{Address: "/readyz", Text: "Readiness"},
	}
	mux.HandleFunc("POST /bench", func(w http.ResponseWriter, r *http.Request) {
		if opts.Bench == nil {
			http.Error(w, "on-demand benchmarks are off; start nodetune serve with --web.enable-bench to allow POST /bench", http.StatusNotFound)
			return
		}
		out, err := opts.Bench(r.Context())
		switch {
		case errors.Is(err, ErrBusy):
			w.Header().Set("Retry-After", "10")
			http.Error(w, err.Error(), http.StatusTooManyRequests)
			return
		case err != nil:
			log.Error("on-demand benchmark failed", "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, out)
	})
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "nodetune",
		Description: "Why this node's pod network is slow, in numbers",
		Version:     e.version,
		Links:       links,
	})
	if err != nil {
		return nil, err
	}
	mux.Handle("GET /{$}", landing)
	return mux, nil
}

// HealthHandler serves /healthz and /readyz alone, as Handler does, for a
// listener of their own: one without TLS or authentication, on an address
// only the kubelet reaches, so that its probes work whatever
// --web.config.file asks of the metrics listener (docs/serve.md).
func (e *Exporter) HealthHandler(opts HandlerOptions) http.Handler {
	mux := http.NewServeMux()
	e.handleHealth(mux, opts)
	return mux
}

func (e *Exporter) handleHealth(mux *http.ServeMux, opts HandlerOptions) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if why := e.stale(opts.StaleAfter); why != "" {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !e.Ready() {
			http.Error(w, "no snapshot yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
}

// stale says why the serve loop looks stuck, or "" while it completes
// snapshots within limit (or limit is not positive).
func (e *Exporter) stale(limit time.Duration) string {
	if limit <= 0 {
		return ""
	}
	now := e.now()
	last := e.updated.Load()
	if last == 0 {
		if age := now.Sub(e.started); age > limit {
			return fmt.Sprintf("no snapshot completed in the %s since start (limit %s): the probe loop is stuck", age.Round(time.Second), limit)
		}
		return ""
	}
	if age := now.Sub(time.Unix(0, last)); age > limit {
		return fmt.Sprintf("the last snapshot was completed %s ago (limit %s): the probe loop is stuck", age.Round(time.Second), limit)
	}
	return ""
}

func (e *Exporter) serveFindings(w http.ResponseWriter, r *http.Request) {
	st := e.State()
	if st == nil {
		http.Error(w, "no snapshot yet", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, report.Build(e.version, st.Snapshot, st.Result))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to tell it
}
