package bench

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"
)

// ErrBusy is what a measurement or a session gets while another runs on
// this node: one run at a time, since two would each measure half a node.
var ErrBusy = errors.New("another measurement runs on this node")

// Guard decides who may start a measurement: the holder of the token, and
// in a cluster only from an address of a Node.
type Guard struct {
	// TokenFile holds the token, or several, one per line, any of which
	// is accepted (for a rotation without failed runs; a measurer sends the
	// first). It is read on every request, so that a rotated Secret works
	// without a restart. A guard without one, or whose file holds no token,
	// refuses everyone.
	TokenFile string
	// NodeAddress, when set, reports whether an address belongs to a Node
	// of the cluster; nil admits any address (outside a cluster).
	NodeAddress func(ctx context.Context, a netip.Addr) (bool, error)
	// Log receives refusals at debug level and broken configuration at
	// error level (default slog.Default()).
	Log *slog.Logger
}

// check returns the HTTP status that refuses r, or 0 when r may go on.
func (g Guard) check(r *http.Request) (int, string) {
	log := g.Log
	if log == nil {
		log = slog.Default()
	}
	tokens, err := readTokens(g.TokenFile)
	if err != nil {
		log.Warn("refusing a measurement request: no usable token", "err", err)
		return http.StatusServiceUnavailable, "this node has no usable token for measurements"
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	match := 0
	for _, want := range tokens {
		// Every token is compared, in constant time each.
		match |= subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want)
	}
	if !ok || match != 1 {
		log.Debug("refusing a measurement request: wrong or missing token", "remote", r.RemoteAddr)
		return http.StatusUnauthorized, "a valid bearer token is required"
	}
	if g.NodeAddress == nil {
		return 0, ""
	}
	from, err := remoteAddr(r)
	if err != nil {
		return http.StatusForbidden, "the request's source address is unreadable"
	}
	isNode, err := g.NodeAddress(r.Context(), from)
	if err != nil {
		log.Error("refusing a measurement request: cannot list the Nodes' addresses", "remote", from, "err", err)
		return http.StatusServiceUnavailable, "cannot check that the request comes from a Node"
	}
	if !isNode {
		log.Debug("refusing a measurement request: not from a Node", "remote", from)
		return http.StatusForbidden, "measurements are taken only from an address of a Node"
	}
	return 0, ""
}

// Wrap lets only the requests g admits reach h; others get an error and
// cause nothing.
func (g Guard) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, msg := g.check(r); code != 0 {
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="nodetune"`)
			}
			writeError(w, code, msg)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// HasToken reports whether the token file at path holds a token now: a
// node whose peer Secret is still empty takes no part in peer measurement.
func HasToken(path string) bool {
	_, err := readTokens(path)
	return err == nil
}

// readTokens reads the tokens of a token file, one per non-empty line; a
// file with none is an error.
func readTokens(path string) ([][]byte, error) {
	if path == "" {
		return nil, errors.New("no token file configured")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the token: %w", err)
	}
	var out [][]byte
	for line := range strings.Lines(string(b)) {
		if t := strings.TrimSpace(line); t != "" {
			out = append(out, []byte(t))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the token file %s holds no token", path)
	}
	return out, nil
}

// remoteAddr is the address r came from.
func remoteAddr(r *http.Request) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}

// localAddr is the address r reached.
func localAddr(r *http.Request) (netip.Addr, error) {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(interface{ String() string })
	if !ok {
		return netip.Addr{}, errors.New("the request carries no local address")
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}
