package kube

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"sync"
	"time"
)

// NodeAddresses maps the InternalIP and ExternalIP addresses of the
// cluster's Nodes to their names, from a list it keeps for a while: the
// peer responder admits only Nodes, and a checksum report names the Node
// that sent the bad packets. Safe for concurrent use.
type NodeAddresses struct {
	get func(ctx context.Context, path string, q url.Values, out any) error
	now func() time.Time
	// TTL is how long a list is used for an address it knows; MissTTL how
	// soon an address it does not know may list the Nodes again (a Node
	// that just joined).
	TTL, MissTTL time.Duration

	mu     sync.Mutex
	names  map[netip.Addr]string
	listed time.Time
}

// Default lifetimes of a NodeAddresses list.
const (
	NodeAddressesTTL     = 5 * time.Minute
	NodeAddressesMissTTL = 30 * time.Second
)

// NewNodeAddresses lists the Nodes through c.
func NewNodeAddresses(c *Client) *NodeAddresses { return newNodeAddresses(c.Get) }

func newNodeAddresses(get func(ctx context.Context, path string, q url.Values, out any) error) *NodeAddresses {
	return &NodeAddresses{get: get, now: time.Now, TTL: NodeAddressesTTL, MissTTL: NodeAddressesMissTTL}
}

// nodeAddrList is a core/v1 NodeList with only names and addresses.
type nodeAddrList struct {
	Items []struct {
		Metadata ObjectMeta `json:"metadata"`
		Status   struct {
			Addresses []struct {
				Type    string `json:"type"`
				Address string `json:"address"`
			} `json:"addresses"`
		} `json:"status"`
	} `json:"items"`
}

// NodeFor returns the name of the Node that has addr as an InternalIP or
// ExternalIP, "" when none has, listing the Nodes when the list is old or
// does not know addr.
func (n *NodeAddresses) NodeFor(ctx context.Context, addr netip.Addr) (string, error) {
	addr = addr.Unmap()
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	name, ok := n.names[addr]
	age := now.Sub(n.listed)
	if n.names != nil && (ok && age < n.TTL || !ok && age < n.MissTTL) {
		return name, nil
	}
	var l nodeAddrList
	// resourceVersion 0: from the API server's cache, not etcd.
	if err := n.get(ctx, Path("", "v1", "", "nodes", ""), url.Values{"resourceVersion": {"0"}}, &l); err != nil {
		return "", fmt.Errorf("listing the Nodes' addresses: %w", err)
	}
	names := map[netip.Addr]string{}
	for _, it := range l.Items {
		for _, a := range it.Status.Addresses {
			if a.Type != "InternalIP" && a.Type != "ExternalIP" {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				names[ip.Unmap()] = it.Metadata.Name
			}
		}
	}
	n.names, n.listed = names, now
	return names[addr], nil
}

// IsNode reports whether addr is an InternalIP or ExternalIP of a Node.
func (n *NodeAddresses) IsNode(ctx context.Context, addr netip.Addr) (bool, error) {
	name, err := n.NodeFor(ctx, addr)
	return name != "", err
}
