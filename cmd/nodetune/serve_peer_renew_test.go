package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/kube"
)

// hangingLeases is an API server that serves Leases until hang is set,
// and from then on answers nothing until the request is given up: an API
// server that went slow in the middle of a run.
type hangingLeases struct {
	hang atomic.Bool
	stop chan struct{} // closed when the test ends
	mu   sync.Mutex
	objs map[string]map[string]any
	rv   int
}

func (h *hangingLeases) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.hang.Load() {
		_, _ = io.Copy(io.Discard, r.Body) // so that the server sees the client give up
		select {
		case <-r.Context().Done():
		case <-h.stop:
		}
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	const prefix = "/apis/coordination.k8s.io/v1/namespaces/nodetune/leases"
	name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, prefix), "/")
	w.Header().Set("Content-Type", "application/json")
	write := func() {
		var obj map[string]any
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &obj); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		meta, _ := obj["metadata"].(map[string]any)
		h.rv++
		meta["resourceVersion"] = strconv.Itoa(h.rv)
		h.objs[meta["name"].(string)] = obj
		_ = json.NewEncoder(w).Encode(obj)
	}
	switch obj, ok := h.objs[name]; {
	case r.Method == http.MethodPost:
		write()
	case r.Method == http.MethodGet && ok, r.Method == http.MethodPut && ok:
		if r.Method == http.MethodPut {
			write()
			return
		}
		_ = json.NewEncoder(w).Encode(obj)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
	}
}

// TestPeerScheduleSlowAPIServer: when the API server stops answering in
// the middle of a run, the run ends before its Leases can expire in the
// eyes of another contender (leaseDuration after it last saw them
// renewed), as client-go's leaderelection gives up leading at its renew
// deadline; a renewal that merely waits for the client's own timeout
// would keep measuring after another run may have taken the node.
func TestPeerScheduleSlowAPIServer(t *testing.T) {
	h := &hangingLeases{objs: map[string]map[string]any{}, stop: make(chan struct{})}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer close(h.stop)
	c, err := kube.NewClient(&kube.Config{Host: srv.URL, QPS: 100, Burst: 100, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const lease = 3 * time.Second
	var acquired time.Time
	ended := make(chan time.Duration, 1)
	s := &peerScheduler{
		self: "a", interval: time.Hour, timeout: 30 * time.Second, leaseDuration: lease,
		nodes: func(context.Context) ([]kube.PeerNode, error) {
			return []kube.PeerNode{{Name: "a", Address: "10.0.0.1"}, {Name: "b", Address: "10.0.0.2"}}, nil
		},
		newLease: func(name string) (*kube.Lease, error) { return kube.NewLease(c, "nodetune", name, "a", lease) },
		measure: func(ctx context.Context, _ string) (detect.PeerMeasurement, error) {
			acquired = time.Now()
			h.hang.Store(true) // the API server goes slow once the run has its Leases
			<-ctx.Done()
			ended <- time.Since(acquired)
			return detect.PeerMeasurement{}, ctx.Err()
		},
		save: func(detect.PeerMeasurement) error { return nil },
		log:  slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	done := make(chan struct{})
	go func() { defer close(done); _, _ = s.runOnce(context.Background()) }()
	select {
	case took := <-ended:
		if took >= lease {
			t.Errorf("the measurement ran %s after its Leases were last written; want it ended before their %s expire", took.Round(time.Millisecond), lease)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("the measurement never ended")
	}
	<-done
}
