package kube

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPeerNodes lists Nodes over two pages and keeps the Ready ones that
// carry nodetune's condition, by InternalIP, sorted by name.
func TestPeerNodes(t *testing.T) {
	pages := []string{
		`{"kind":"NodeList","metadata":{"continue":"x"},"items":[
		 {"metadata":{"name":"c"},"status":{"conditions":[{"type":"Ready","status":"True"},{"type":"NetworkPerformanceDegraded","status":"False"}],
		  "addresses":[{"type":"Hostname","address":"c"},{"type":"InternalIP","address":"10.0.0.3"}]}},
		 {"metadata":{"name":"not-ready"},"status":{"conditions":[{"type":"Ready","status":"False"},{"type":"NetworkPerformanceDegraded","status":"False"}],
		  "addresses":[{"type":"InternalIP","address":"10.0.0.9"}]}}]}`,
		`{"kind":"NodeList","metadata":{},"items":[
		 {"metadata":{"name":"a"},"status":{"conditions":[{"type":"Ready","status":"True"},{"type":"NetworkPerformanceDegraded","status":"True"}],
		  "addresses":[{"type":"ExternalIP","address":"192.0.2.1"}]}},
		 {"metadata":{"name":"no-nodetune"},"status":{"conditions":[{"type":"Ready","status":"True"}],"addresses":[{"type":"InternalIP","address":"10.0.0.8"}]}},
		 {"metadata":{"name":"no-address"},"status":{"conditions":[{"type":"Ready","status":"True"},{"type":"NetworkPerformanceDegraded","status":"False"}],
		  "addresses":[{"type":"Hostname","address":"no-address"}]}}]}`,
	}
	n := 0
	cfg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/nodes" {
			t.Errorf("path %s", r.URL.Path)
		}
		if n == 1 && r.URL.Query().Get("continue") != "x" {
			t.Errorf("second page without continue: %s", r.URL.RawQuery)
		}
		w.Write([]byte(pages[n]))
		n++
	})
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := PeerNodes(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	want := []PeerNode{{"a", "192.0.2.1"}, {"c", "10.0.0.3"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PeerNodes (-want +got):\n%s", diff)
	}
}

// TestNextPeer: the ring by name, wrapping around, with or without self.
func TestNextPeer(t *testing.T) {
	nodes := []PeerNode{{Name: "a"}, {Name: "b"}, {Name: "d"}}
	for _, tt := range []struct {
		self, want string
		ok         bool
	}{
		{"a", "b", true},
		{"b", "d", true},
		{"d", "a", true}, // wraps
		{"c", "d", true}, // self not (yet) in the list
		{"e", "a", true},
	} {
		got, ok := NextPeer(tt.self, nodes)
		if ok != tt.ok || got.Name != tt.want {
			t.Errorf("NextPeer(%q) = %q, %v; want %q, %v", tt.self, got.Name, ok, tt.want, tt.ok)
		}
	}
	if _, ok := NextPeer("a", []PeerNode{{Name: "a"}}); ok {
		t.Error("a node alone has a peer")
	}
	if _, ok := NextPeer("a", nil); ok {
		t.Error("no nodes, yet a peer")
	}
}
