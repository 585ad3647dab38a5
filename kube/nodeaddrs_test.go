package kube

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"net/url"
	"testing"
	"time"
)

// TestNodeAddresses: InternalIP and ExternalIP of every Node count, other
// kinds do not; the list is cached, and listed again for an unknown
// address only after MissTTL (a Node that just joined).
func TestNodeAddresses(t *testing.T) {
	lists := 0
	body := `{"items":[{"metadata":{"name":"a"},"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.1"},{"type":"Hostname","address":"10.9.9.9"}]}},
		{"metadata":{"name":"b"},"status":{"addresses":[{"type":"ExternalIP","address":"2001:db8::2"}]}}]}`
	var fail error
	n := newNodeAddresses(func(_ context.Context, path string, _ url.Values, out any) error {
		lists++
		if path != "/api/v1/nodes" {
			t.Errorf("listed %s", path)
		}
		if fail != nil {
			return fail
		}
		return json.Unmarshal([]byte(body), out)
	})
	for addr, want := range map[string]bool{"10.0.0.1": true, "2001:db8::2": true, "10.9.9.9": false, "10.0.0.3": false} {
		got, err := n.IsNode(context.Background(), netip.MustParseAddr(addr))
		if err != nil || got != want {
			t.Errorf("contains(%s) = %t, %v; want %t", addr, got, err, want)
		}
	}
	if lists != 1 {
		t.Errorf("listed the Nodes %d times for four questions, want once", lists)
	}
	n.listed = time.Now().Add(-n.MissTTL - time.Second)
	fail = errors.New("API server down")
	if _, err := n.IsNode(context.Background(), netip.MustParseAddr("10.0.0.3")); err == nil {
		t.Error("an unknown address after the retry time did not list again")
	}
	if ok, err := n.IsNode(context.Background(), netip.MustParseAddr("10.0.0.1")); !ok || err != nil {
		t.Errorf("a known Node within the TTL: %t, %v", ok, err)
	}
	fail = nil
	n.listed = time.Now().Add(-n.MissTTL - time.Second)
	if name, err := n.NodeFor(context.Background(), netip.MustParseAddr("::ffff:10.0.0.1")); name != "a" || err != nil {
		t.Errorf("NodeFor(a v4-mapped address of a) = %q, %v", name, err)
	}
}
