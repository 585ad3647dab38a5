package bench

import (
	"time"
)

// The peer protocol (docs/bench.md, "Between nodes"): HTTP with JSON bodies
// on the responder's port, every request carrying the token as
// "Authorization: Bearer <token>". A measurer opens a session, asks for a
// temporary tunnel if it wants the offload cases, runs each case (the
// responder opens a short-lived TCP port for it that accepts only the
// measurer's addresses), marks the start and end of each measuring window,
// and closes the session. Nothing but these paths is served.
const (
	// PeerPathSessions is where a session is opened (POST).
	PeerPathSessions = "/v1/sessions"
	// DefaultPeerPort is the responder's default port.
	DefaultPeerPort = 9849
)

// Caps the responder holds a measurer to, whatever it asks.
const (
	// MaxPeerStreams is the most TCP streams of one case.
	MaxPeerStreams = 16
	// MaxPeerDuration is the longest measuring window of one case.
	MaxPeerDuration = 10 * time.Second
	// MaxPeerWarmup is the longest warm-up of one case.
	MaxPeerWarmup = 2 * time.Second
	// maxPeerCases is the most cases of one session: four cases, two
	// directions.
	maxPeerCases = 8
	// peerSlack is the time a session gets beyond its cases' run time for
	// setting up and talking.
	peerSlack = 30 * time.Second
	// maxPeerBody bounds a request body.
	maxPeerBody = 4 << 10
)

// Defaults of the temporary tunnel: a VNI and a UDP port of its own, apart
// from every CNI's (flannel 1/8472, Calico 4096/4789, Cilium 8472).
const (
	DefaultPeerVNI        = 9849
	DefaultPeerTunnelPort = 4790
)

// sessionRequest opens a session.
type sessionRequest struct {
	// Streams, DurationMS and WarmupMS shape every case; the responder
	// lowers them to its caps.
	Streams    int   `json:"streams"`
	DurationMS int64 `json:"duration_ms"`
	WarmupMS   int64 `json:"warmup_ms"`
	// Cases is how many cases the measurer will run, for the deadline.
	Cases int `json:"cases"`
}

// sessionResponse is an open session.
type sessionResponse struct {
	ID string `json:"id"`
	// Expires is when the responder ends the session and removes what it
	// made for it, whatever the measurer does.
	Expires time.Time `json:"expires"`
	// Streams, DurationMS and WarmupMS are what the responder allows.
	Streams    int   `json:"streams"`
	DurationMS int64 `json:"duration_ms"`
	WarmupMS   int64 `json:"warmup_ms"`
	// You is the measurer's address as the responder saw it; Host is the
	// responder's own address the request reached.
	You  string `json:"you"`
	Host string `json:"host"`
	// Node is the responder's Node name, if it knows it.
	Node string `json:"node,omitempty"`
	// TunnelDevice and TunnelAddress are the responder's CNI tunnel and
	// its IPv4 address; TunnelError says why there is none.
	TunnelDevice  string `json:"tunnel_device,omitempty"`
	TunnelAddress string `json:"tunnel_address,omitempty"`
	TunnelError   string `json:"tunnel_error,omitempty"`
}

// tunnelRequest asks the responder for its end of a temporary tunnel.
type tunnelRequest struct {
	// Kind is "vxlan" or "geneve"; MTU the CNI tunnel's.
	Kind string `json:"kind"`
	MTU  int    `json:"mtu"`
	VNI  int    `json:"vni"`
	Port int    `json:"port"`
	// Subnet is the /30 the two ends take their addresses from: the
	// measurer takes the first, the responder the second.
	Subnet string `json:"subnet"`
}

// tunnelResponse is the responder's end of the temporary tunnel.
type tunnelResponse struct {
	Device  string `json:"device"`
	Address string `json:"address"`
}

// caseRequest opens one case.
type caseRequest struct {
	// Name is one of detect.PeerCase*; Direction is detect.PeerSend (the
	// measurer sends) or detect.PeerReceive (the responder sends).
	Name      string `json:"name"`
	Direction string `json:"direction"`
	// Offload is the tx checksum offload the sending end's temporary
	// tunnel runs with, for the offload cases.
	Offload *bool `json:"offload,omitempty"`
	// From is the address the measurer's connections come from on this
	// path, when it is not You (its tunnel address).
	From string `json:"from,omitempty"`
}

// caseResponse is an open case: where to connect.
type caseResponse struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// markResponse is the responder's side of a measuring window: what it
// received so far and its CPU sample at the mark. At the end mark it also
// carries the window's usage.
type markResponse struct {
	Bytes int64     `json:"bytes"`
	At    time.Time `json:"at"`
	// Usage is the responder's CPU and softnet use over the window, at the
	// end mark.
	Usage *Usage `json:"usage,omitempty"`
	// Spoiled, at the end mark, says why the window does not measure the
	// case (the responder's offload changed under it).
	Spoiled string `json:"spoiled,omitempty"`
}

// errorResponse is every refusal's body.
type errorResponse struct {
	Error string `json:"error"`
}
