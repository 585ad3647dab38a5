package kube

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// PeerNode is a Node that nodetune may measure the path to: its name and
// the address its peer responder listens on.
type PeerNode struct {
	Name string
	// Address is the Node's InternalIP (the first one listed), else its
	// first address of any type.
	Address string
}

// peerRingNode is a core/v1 Node with the fields the ring reads.
type peerRingNode struct {
	ObjectMeta `json:"metadata,omitempty"`
	Status     struct {
		Conditions []NodeCondition `json:"conditions,omitempty"`
		Addresses  []struct {
			Type    string `json:"type"`
			Address string `json:"address"`
		} `json:"addresses,omitempty"`
	} `json:"status,omitempty"`
}

type peerRingList struct {
	ListMeta `json:"metadata,omitempty"`
	Items    []peerRingNode `json:"items"`
}

// PeerNodes lists the Nodes that take part in peer measurement: Ready,
// with an address, and carrying the NetworkPerformanceDegraded condition
// that nodetune's agent writes, the one sign in a Node itself that
// nodetune runs there (the agent's RBAC cannot list pods). A Node whose
// agent stopped keeps the condition; measuring it then fails and is
// reported, and the ring moves on at the next run. The list is sorted by
// name.
func PeerNodes(ctx context.Context, c *Client) ([]PeerNode, error) {
	var out []PeerNode
	q := url.Values{"limit": {"500"}}
	for {
		var list peerRingList
		if err := c.Get(ctx, Path("", "v1", "", "nodes", ""), q, &list); err != nil {
			return nil, fmt.Errorf("listing Nodes: %w", err)
		}
		for _, n := range list.Items {
			if p, ok := peerNode(n); ok {
				out = append(out, p)
			}
		}
		if list.Continue == "" {
			break
		}
		q.Set("continue", list.Continue)
	}
	slices.SortFunc(out, func(a, b PeerNode) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// peerNode says whether n takes part, and how to reach it.
func peerNode(n peerRingNode) (PeerNode, bool) {
	ready := findCondition(n.Status.Conditions, "Ready")
	if ready == nil || ready.Status != ConditionTrue || findCondition(n.Status.Conditions, ConditionType) == nil {
		return PeerNode{}, false
	}
	addr := ""
	for _, a := range n.Status.Addresses {
		if a.Type == "InternalIP" && a.Address != "" {
			addr = a.Address
			break
		}
	}
	if addr == "" {
		for _, a := range n.Status.Addresses {
			if a.Address != "" && a.Type != "Hostname" {
				addr = a.Address
				break
			}
		}
	}
	if addr == "" {
		return PeerNode{}, false
	}
	return PeerNode{Name: n.Name, Address: addr}, true
}

// NextPeer is the node self measures in the ring: the first node after
// self in name order, wrapping around. self need not be in nodes (its
// agent may not have written its condition yet). It returns false when no
// other node takes part.
func NextPeer(self string, nodes []PeerNode) (PeerNode, bool) {
	var first *PeerNode
	for i := range nodes {
		n := &nodes[i]
		if n.Name == self {
			continue
		}
		if first == nil || n.Name < first.Name {
			first = n
		}
	}
	if first == nil {
		return PeerNode{}, false
	}
	var next *PeerNode
	for i := range nodes {
		n := &nodes[i]
		if n.Name > self && (next == nil || n.Name < next.Name) {
			next = n
		}
	}
	if next == nil {
		return *first, true
	}
	return *next, true
}
