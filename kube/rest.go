package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// nodetune talks to the API server through the small REST client of this
// file, on net/http and encoding/json, rather than client-go: client-go's
// REST client with apimachinery's scheme and codecs made serve's binary
// about 4 MiB larger, and most of a Go binary's mapped pages end up
// resident, in a daemon that runs on every node (docs/serve.md,
// "Footprint"). It knows paths and JSON; the typed helpers (the Node
// watch, events) are built on it, and so can others (Leases, Calico's
// FelixConfiguration).

// Config says how to reach and authenticate to an API server.
type Config struct {
	// Host is the server's URL, such as "https://10.96.0.1:443".
	Host string
	// BearerToken authenticates every request; BearerTokenFile, when set,
	// wins, and is read again whenever the file changes (a projected
	// ServiceAccount token is rotated by the kubelet).
	BearerToken     string
	BearerTokenFile string
	// CAData is the PEM bundle that verifies the server's certificate;
	// empty uses the system's roots.
	CAData []byte
	// CertData and KeyData are a PEM client certificate and its key.
	CertData, KeyData []byte
	// Insecure skips verifying the server's certificate.
	Insecure bool
	// ServerName is the name the server's certificate must hold, when it
	// is not the host of Host.
	ServerName string
	// QPS and Burst limit the requests per second (a token bucket);
	// zero means 5 and 10, client-go's defaults.
	QPS   float32
	Burst int
	// Timeout bounds each request that is not a watch, its retries
	// included; zero means defaultTimeout. The caller's context may end it sooner.
	Timeout time.Duration
	// UserAgent names the client; empty means "nodetune".
	UserAgent string
}

// The PATCH content types nodetune uses.
const (
	StrategicMergePatch = "application/strategic-merge-patch+json"
	MergePatch          = "application/merge-patch+json"
	JSONPatch           = "application/json-patch+json"
)

// defaultTimeout bounds a request when Config.Timeout is zero, so that an
// API server that accepts a connection and never answers cannot hold up
// serve's condition updates for good.
const defaultTimeout = 30 * time.Second

// maxAnswer bounds what nodetune reads of one answer, and of one event
// of a watch: an object is at most about 1.5 MiB in etcd, and nodetune
// reads single objects (lists filtered to one name), so 16 MiB is far
// above any real answer while keeping a broken or hostile server from
// filling the agent's memory on every node.
const maxAnswer = 16 << 20

// ErrAnswerTooLarge means an answer or a watch event exceeded maxAnswer.
var ErrAnswerTooLarge = fmt.Errorf("the answer is larger than %d MiB", maxAnswer>>20)

// The HTTP/2 health check, as client-go's: a connection on which no frame
// arrived for h2ReadIdle is pinged, and closed when the ping is not
// answered within h2PingTimeout. Without it a connection that goes
// silent (a lost route, an expired conntrack entry on the way) holds the
// watch, and every request that shares it, until TCP gives up: up to 15
// minutes when a request's data is unacknowledged.
var (
	h2ReadIdle    = 30 * time.Second
	h2PingTimeout = 15 * time.Second
)

// maxRetries is how often a request the server asks to retry later (429
// or 5xx with Retry-After) is tried again, as client-go does.
const maxRetries = 10

// Client is a REST client for one API server: JSON in and out, errors as
// *StatusError, requests rate-limited.
type Client struct {
	base    *url.URL
	http    *http.Client
	stream  *http.Client // for watches: no overall timeout
	token   *tokenSource
	limiter *rate.Limiter
	agent   string
}

// NewClient returns a client for the API server cfg describes.
func NewClient(cfg *Config) (*Client, error) {
	if cfg == nil || cfg.Host == "" {
		return nil, errors.New("kube: no API server address")
	}
	u, err := url.Parse(cfg.Host)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("kube: API server address %q is not an http(s) URL", cfg.Host)
	}
	if u.Scheme == "http" && (cfg.BearerToken != "" || cfg.BearerTokenFile != "") {
		// The API server serves nothing over plain http since Kubernetes
		// 1.20 (--insecure-port can only be 0); an http:// address is a
		// proxy such as kubectl proxy, which adds the credentials itself.
		return nil, fmt.Errorf("kube: refusing to send a bearer token in clear text to %s: use https", u.Redacted())
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.Insecure, ServerName: cfg.ServerName}
	if len(cfg.CAData) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CAData) {
			return nil, errors.New("kube: the CA bundle holds no PEM certificate")
		}
		tlsCfg.RootCAs = pool
	}
	if len(cfg.CertData) > 0 || len(cfg.KeyData) > 0 {
		cert, err := tls.X509KeyPair(cfg.CertData, cfg.KeyData)
		if err != nil {
			return nil, fmt.Errorf("kube: the client certificate and key: %w", err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 25,
		ForceAttemptHTTP2:   true,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: h2ReadIdle, PingTimeout: h2PingTimeout},
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	qps, burst := cfg.QPS, cfg.Burst
	if qps == 0 {
		qps = 5
	}
	if burst == 0 {
		burst = 10
	}
	c := &Client{
		base:    u,
		http:    &http.Client{Transport: tr, Timeout: timeout},
		stream:  &http.Client{Transport: tr},
		token:   &tokenSource{static: cfg.BearerToken, file: cfg.BearerTokenFile},
		limiter: rate.NewLimiter(rate.Limit(qps), burst),
		agent:   cfg.UserAgent,
	}
	if c.agent == "" {
		c.agent = "nodetune"
	}
	return c, nil
}

// Path builds an API path: the core group ("") under /api, others under
// /apis; namespace, name and subresources are left out when empty.
func Path(group, version, namespace, resource, name string, subresource ...string) string {
	parts := []string{"/apis", group, version}
	if group == "" {
		parts = []string{"/api", version}
	}
	if namespace != "" {
		parts = append(parts, "namespaces", url.PathEscape(namespace))
	}
	parts = append(parts, resource)
	if name != "" {
		parts = append(parts, url.PathEscape(name))
	}
	for _, s := range subresource {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "/")
}

// Get reads path into out.
func (c *Client) Get(ctx context.Context, path string, query url.Values, out any) error {
	return c.Do(ctx, http.MethodGet, path, query, "", nil, out)
}

// Post creates body (JSON-encoded, or raw []byte) at path, the created
// object into out.
func (c *Client) Post(ctx context.Context, path string, body, out any) error {
	return c.Do(ctx, http.MethodPost, path, nil, "application/json", body, out)
}

// Put replaces the object at path with body.
func (c *Client) Put(ctx context.Context, path string, body, out any) error {
	return c.Do(ctx, http.MethodPut, path, nil, "application/json", body, out)
}

// Patch patches the object at path with patch, of content type pt
// (StrategicMergePatch, MergePatch or JSONPatch).
func (c *Client) Patch(ctx context.Context, path, pt string, patch []byte, out any) error {
	return c.Do(ctx, http.MethodPatch, path, nil, pt, patch, out)
}

// Delete deletes the object at path.
func (c *Client) Delete(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodDelete, path, nil, "", nil, out)
}

// Do sends one request and decodes a 2xx answer's JSON into out (when out
// is not nil); any other answer becomes a *StatusError. body is sent as
// is when it is a []byte, JSON-encoded otherwise. A 429 or 5xx answer
// with Retry-After is tried again after that many seconds, up to
// maxRetries times and while the timeout leaves time to wait.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, contentType string, body, out any) error {
	var data []byte
	if body != nil {
		if b, ok := body.([]byte); ok {
			data = b
		} else {
			var err error
			if data, err = json.Marshal(body); err != nil {
				return fmt.Errorf("encoding the %s %s body: %w", method, path, err)
			}
		}
	}
	// The timeout covers the retries too, as client-go's does.
	ctx, cancel := context.WithTimeout(ctx, c.http.Timeout)
	defer cancel()
	for try := 0; ; try++ {
		resp, err := c.send(ctx, c.http, method, path, query, contentType, data)
		if err != nil {
			return err
		}
		raw, err := readAnswer(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			if out == nil || len(raw) == 0 {
				return nil
			}
			if err := json.Unmarshal(raw, out); err != nil {
				return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
			}
			return nil
		}
		serr := decodeStatus(resp.StatusCode, raw)
		wait, ok := retryAfter(resp)
		if !ok || try >= maxRetries {
			return serr
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return serr // no time left to wait for: the server's answer, not a timeout
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s: %w (last answer: %w)", method, path, ctx.Err(), serr)
		case <-time.After(wait):
		}
	}
}

// send waits for the rate limiter and sends one request.
func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, query url.Values, contentType string, data []byte) (*http.Response, error) {
	if err := c.limiter.Wait(ctx); err != nil {
		return nil, fmt.Errorf("%s %s: waiting for the rate limiter: %w", method, path, err)
	}
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if data != nil {
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)
	if contentType != "" && data != nil {
		req.Header.Set("Content-Type", contentType)
	}
	tok, err := c.token.get()
	if err != nil {
		return nil, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp, nil
}

// retryAfter returns how long the server asks to wait before trying
// again: a 429 or 5xx answer with a Retry-After in whole seconds.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
		return 0, false
	}
	s, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || s < 0 {
		return 0, false
	}
	// Capped before the multiplication, which would overflow; no request
	// waits a day.
	return time.Duration(min(s, 86400)) * time.Second, true
}

// readAnswer reads an answer whole, up to maxAnswer.
func readAnswer(r io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxAnswer+1))
	if err == nil && len(raw) > maxAnswer {
		err = ErrAnswerTooLarge
	}
	return raw, err
}

// eventReader bounds each event of a watch stream: it lets at most
// maxAnswer bytes through until next is called (after each event), so
// one event is at most that plus what the decoder had read ahead.
type eventReader struct {
	r    io.Reader
	left int
}

func newEventReader(r io.Reader) *eventReader { return &eventReader{r: r, left: maxAnswer} }

// next starts the allowance of the next event.
func (e *eventReader) next() { e.left = maxAnswer }

func (e *eventReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, ErrAnswerTooLarge
	}
	if len(p) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= n
	return n, err
}
