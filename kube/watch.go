package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Watch keeps one named object of a collection current, as client-go's
// informer does for nodetune's one Node: it lists the collection with a
// field selector on the name, then watches from the list's
// resourceVersion, watches again from the last version seen when a watch
// ends, and lists anew when the server answers 410 Gone (the version is
// too old). Failures back off from 800 ms to 30 s, as client-go's
// reflector does. T is the object's type, decoded from its JSON.
type Watch[T any] struct {
	c    *Client
	path string // the collection, e.g. Path("", "v1", "", "nodes", "")
	name string
	log  *slog.Logger

	mu     sync.Mutex
	obj    *T
	synced chan struct{}
	once   sync.Once
}

// NewWatch returns a watch of the object called name in the collection at
// path. Run starts it.
func NewWatch[T any](c *Client, path, name string, log *slog.Logger) *Watch[T] {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watch[T]{c: c, path: path, name: name, log: log, synced: make(chan struct{})}
}

// Get returns the object as last seen, and false when it does not exist
// or has not been read yet. The object is shared: do not change it.
func (w *Watch[T]) Get() (*T, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.obj, w.obj != nil
}

// Synced is closed once the first list has succeeded.
func (w *Watch[T]) Synced() <-chan struct{} { return w.synced }

func (w *Watch[T]) set(obj *T) {
	w.mu.Lock()
	w.obj = obj
	w.mu.Unlock()
}

// The reflector's back-off, as client-go's: 800 ms doubling to 30 s.
const (
	backoffMin = 800 * time.Millisecond
	backoffMax = 30 * time.Second
)

// Run lists and watches until ctx ends.
func (w *Watch[T]) Run(ctx context.Context) {
	rv := ""
	wait := backoffMin
	for ctx.Err() == nil {
		var err error
		if rv == "" {
			rv, err = w.list(ctx)
		} else {
			rv, err = w.watch(ctx, rv)
		}
		switch {
		case ctx.Err() != nil:
			return
		case IsGone(err):
			w.log.Debug("the watch's resourceVersion is too old; listing anew", "path", w.path)
			rv = ""
			continue
		case err != nil:
			w.log.Warn("watching the API server; trying again", "path", w.path, "name", w.name, "in", wait, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, backoffMax)
			continue
		}
		wait = backoffMin
	}
}

// selector is the field selector on the object's name.
func (w *Watch[T]) selector() string { return "metadata.name=" + w.name }

// list reads the object and returns the list's resourceVersion.
func (w *Watch[T]) list(ctx context.Context) (string, error) {
	var l struct {
		Metadata ListMeta          `json:"metadata"`
		Items    []json.RawMessage `json:"items"`
	}
	q := url.Values{"fieldSelector": {w.selector()}}
	if err := w.c.Get(ctx, w.path, q, &l); err != nil {
		return "", fmt.Errorf("listing %s: %w", w.path, err)
	}
	var obj *T
	if len(l.Items) > 0 {
		obj = new(T)
		if err := json.Unmarshal(l.Items[0], obj); err != nil {
			return "", fmt.Errorf("decoding %s %s: %w", w.path, w.name, err)
		}
	}
	w.set(obj)
	w.once.Do(func() { close(w.synced) })
	if l.Metadata.ResourceVersion == "" {
		return "", fmt.Errorf("listing %s: the list has no resourceVersion", w.path)
	}
	return l.Metadata.ResourceVersion, nil
}

// watchEvent is one event of a watch stream (metav1.WatchEvent).
type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// watch follows the object from rv until the stream ends, and returns the
// last resourceVersion seen.
func (w *Watch[T]) watch(ctx context.Context, rv string) (string, error) {
	return w.c.watchStream(ctx, w.path, w.selector(), rv, w.path, w.apply)
}

// watchStream runs one watch of the collection at path, narrowed by the
// field selector sel, from resourceVersion rv until the stream ends. It
// hands apply every event but ERROR, which ends the watch with the
// server's status, and returns the last resourceVersion apply reported. A
// server-side timeout between 5 and 10 minutes spreads the re-watches of
// many nodes, as client-go's does. what names the watch in errors.
func (c *Client) watchStream(ctx context.Context, path, sel, rv, what string, apply func(watchEvent) (string, error)) (string, error) {
	q := url.Values{
		"fieldSelector":       {sel},
		"watch":               {"true"},
		"resourceVersion":     {rv},
		"allowWatchBookmarks": {"true"},
		"timeoutSeconds":      {strconv.Itoa(300 + rand.IntN(300))},
	}
	resp, err := c.send(ctx, c.stream, http.MethodGet, path, q, "", nil)
	if err != nil {
		return rv, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return rv, fmt.Errorf("watching %s: %w", what, decodeStatus(resp.StatusCode, raw))
	}
	body := newEventReader(resp.Body)
	dec := json.NewDecoder(body)
	start, events := time.Now(), 0
	for {
		var ev watchEvent
		if err := dec.Decode(&ev); err != nil {
			switch {
			case ctx.Err() != nil:
				return rv, nil
			case errors.Is(err, io.EOF) && events == 0 && time.Since(start) < time.Second:
				// As client-go's reflector: a server that ends every
				// watch at once must not be watched in a busy loop.
				return rv, fmt.Errorf("watching %s: the watch ended at once with no event", what)
			case errors.Is(err, io.EOF):
				return rv, nil // the server's timeout: watch again from rv
			}
			return rv, fmt.Errorf("reading the watch of %s: %w", what, err)
		}
		events++
		body.next()
		if ev.Type == "ERROR" {
			var s status
			if err := json.Unmarshal(ev.Object, &s); err != nil {
				return rv, fmt.Errorf("watching %s: an ERROR event: %w", what, err)
			}
			return rv, fmt.Errorf("watching %s: %w", what, &StatusError{Code: s.Code, Reason: s.Reason, Message: s.Message})
		}
		next, err := apply(ev)
		if err != nil {
			return rv, err
		}
		if next != "" {
			rv = next
		}
	}
}

// apply takes one watch event (not ERROR: watchStream handles those) into
// the cache and returns the resourceVersion it carries.
func (w *Watch[T]) apply(ev watchEvent) (string, error) {
	var meta struct {
		Metadata ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(ev.Object, &meta); err != nil {
		return "", fmt.Errorf("watching %s: decoding a %s event: %w", w.path, ev.Type, err)
	}
	switch ev.Type {
	case "ADDED", "MODIFIED":
		obj := new(T)
		if err := json.Unmarshal(ev.Object, obj); err != nil {
			return "", fmt.Errorf("watching %s: decoding a %s event: %w", w.path, ev.Type, err)
		}
		if meta.Metadata.Name == w.name {
			w.set(obj)
		}
	case "DELETED":
		if meta.Metadata.Name == w.name {
			w.set(nil)
		}
	case "BOOKMARK":
	default:
		return "", fmt.Errorf("watching %s: unknown event type %q", w.path, ev.Type)
	}
	return meta.Metadata.ResourceVersion, nil
}
