package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nodetune/nodetune/detect"
)

// PeerOptions configure the measurer of peer measurements.
type PeerOptions struct {
	// TokenFile holds the token the responders expect (the first line,
	// when it holds several); it is read at the start of each measurement.
	TokenFile string
	// Tunnels reads this node's tunnels: the CNI tunnel the tunnel case
	// leaves by, whose kind and MTU the temporary tunnel copies.
	Tunnels func() (detect.Tunnels, error)
	// Device names the CNI tunnel; empty picks as NodeTunnel does.
	Device string
	// Streams, Duration and Warmup shape each case (defaults 4, 3s,
	// 500ms); the responder may lower them.
	Streams  int
	Duration time.Duration
	Warmup   time.Duration
	// Directions lists detect.PeerSend and/or detect.PeerReceive (default
	// both); Cases the case names to run (default all four, in order).
	Directions []string
	Cases      []string
	// VNI and Port are the temporary tunnel's (default DefaultPeerVNI and
	// DefaultPeerTunnelPort).
	VNI, Port int
	// TLS, when set, talks HTTPS to the responder with it.
	TLS *tls.Config
	// ProcFS is where this node's CPU counters are read (default /proc).
	ProcFS string
	// Log receives progress at debug level (default slog.Default()).
	Log *slog.Logger
}

// PeerClient measures the path between this node and others.
type PeerClient struct {
	o    PeerOptions
	http *http.Client
	smp  sampler
}

// PeerResult is what one peer measurement found, with the detail behind
// each case's figure.
type PeerResult struct {
	Peer    string `json:"peer"`
	Address string `json:"address"`
	// Device is this node's CNI tunnel, PeerDevice the peer's.
	Device     string `json:"device,omitempty"`
	PeerDevice string `json:"peer_device,omitempty"`
	// Kind and TunnelMTU shape the temporary tunnel.
	Kind      string `json:"kind"`
	TunnelMTU int    `json:"tunnel_mtu"`
	// Streams, Duration and Warmup are what the responder allowed.
	Streams  int              `json:"streams"`
	Duration time.Duration    `json:"duration_ns"`
	Warmup   time.Duration    `json:"warmup_ns"`
	Started  time.Time        `json:"started"`
	At       time.Time        `json:"at"`
	Cases    []PeerCaseResult `json:"cases"`
	// Swept lists this node's leftover temporary tunnels removed first.
	Swept []string `json:"swept,omitempty"`
}

// PeerCaseResult is one measured case and what each end's CPUs did.
type PeerCaseResult struct {
	detect.PeerCase
	// Bytes is the payload received in the measuring window, Seconds its
	// length on the receiver's clock.
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	// Sender and Receiver are each end's CPU use over the window, nil when
	// that end could not be sampled.
	Sender   *Usage `json:"sender_usage,omitempty"`
	Receiver *Usage `json:"receiver_usage,omitempty"`
}

// Measurement is r as the rules and the daemon take it.
func (r PeerResult) Measurement() detect.PeerMeasurement {
	m := detect.PeerMeasurement{Peer: r.Peer, Address: r.Address, Device: r.Device, At: r.At}
	if r.Device != "" {
		// The temporary tunnel copied the device's MTU: the rules take
		// the measurement as evidence only while the device keeps it.
		m.MTU = r.TunnelMTU
	}
	for _, c := range r.Cases {
		m.Cases = append(m.Cases, c.PeerCase)
	}
	return m
}

// NewPeerClient checks o and returns a measurer.
func NewPeerClient(o PeerOptions) (*PeerClient, error) {
	if o.Streams == 0 {
		o.Streams = 4
	}
	if o.Duration == 0 {
		o.Duration = 3 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = 500 * time.Millisecond
	}
	if len(o.Directions) == 0 {
		o.Directions = []string{detect.PeerSend, detect.PeerReceive}
	}
	if len(o.Cases) == 0 {
		o.Cases = []string{detect.PeerCaseHost, detect.PeerCaseTunnel, detect.PeerCaseOffloadOn, detect.PeerCaseOffloadOff}
	}
	if o.VNI == 0 {
		o.VNI = DefaultPeerVNI
	}
	if o.Port == 0 {
		o.Port = DefaultPeerTunnelPort
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	switch {
	case o.Streams < 1 || o.Streams > MaxPeerStreams:
		return nil, fmt.Errorf("streams %d: want 1 to %d", o.Streams, MaxPeerStreams)
	case o.Duration < 0 || o.Duration > MaxPeerDuration:
		return nil, fmt.Errorf("duration %s: want at most %s", o.Duration, MaxPeerDuration)
	case o.Warmup < 0 || o.Warmup > MaxPeerWarmup:
		return nil, fmt.Errorf("warm-up %s: want at most %s", o.Warmup, MaxPeerWarmup)
	case len(o.Cases)*len(o.Directions) > maxPeerCases:
		return nil, fmt.Errorf("%d cases in %d directions: at most %d runs", len(o.Cases), len(o.Directions), maxPeerCases)
	}
	for _, d := range o.Directions {
		if d != detect.PeerSend && d != detect.PeerReceive {
			return nil, fmt.Errorf("direction %q: want send or receive", d)
		}
	}
	for _, c := range o.Cases {
		switch c {
		case detect.PeerCaseHost, detect.PeerCaseTunnel, detect.PeerCaseOffloadOn, detect.PeerCaseOffloadOff:
		default:
			return nil, fmt.Errorf("case %q: unknown", c)
		}
	}
	smp, err := newSampler(o.ProcFS)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = o.TLS
	return &PeerClient{o: o, smp: smp, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// Measure measures between this node and peer (HOST or HOST:PORT of its
// responder) and returns what it found: the function the daemon's
// schedule and fix --verify-peer call.
func (c *PeerClient) Measure(ctx context.Context, peer string) (detect.PeerMeasurement, error) {
	r, err := c.Run(ctx, peer)
	if err != nil {
		return detect.PeerMeasurement{}, err
	}
	return r.Measurement(), nil
}

// run is one measurement in progress.
type peerRun struct {
	c      *PeerClient
	base   string
	token  string
	nl     *netlink.Handle
	sess   sessionResponse
	res    *PeerResult
	local  detect.Tunnel
	hasCNI bool
	// temp is this node's end of the temporary tunnel, once made.
	temp    *tempTunnel
	tempErr error
	peerDev string
}

// Run measures between this node and peer, with each case's detail. It
// removes what it made (its temporary tunnel device; the responder's end
// goes with the session) before returning, also when ctx ends. A failed
// case is recorded in its Err; the run fails only when it cannot talk to
// the responder or is refused.
func (c *PeerClient) Run(ctx context.Context, peer string) (res PeerResult, err error) {
	select {
	case running <- struct{}{}:
		defer func() { <-running }()
	default:
		return res, ErrBusy
	}
	tokens, err := readTokens(c.o.TokenFile)
	if err != nil {
		return res, err
	}
	token := tokens[0]
	base, host, err := peerURL(peer, c.o.TLS != nil)
	if err != nil {
		return res, err
	}
	res = PeerResult{Peer: host, Started: time.Now()}
	nl, err := netlink.NewHandle()
	if err != nil {
		return res, detect.Classify("opening netlink", err)
	}
	defer nl.Close()
	if res.Swept, err = SweepPeerTunnels(nl, MeasurerDevicePrefix, false, time.Now()); err != nil {
		c.o.Log.Warn("cannot remove leftover temporary tunnels", "err", err)
	}
	p := &peerRun{c: c, base: base, token: string(token), nl: nl, res: &res}
	p.findLocalTunnel()
	runs := len(c.o.Cases) * len(c.o.Directions)
	err = p.call(ctx, http.MethodPost, PeerPathSessions, sessionRequest{
		Streams: c.o.Streams, DurationMS: c.o.Duration.Milliseconds(), WarmupMS: c.o.Warmup.Milliseconds(), Cases: runs,
	}, &p.sess)
	if err != nil {
		return res, fmt.Errorf("opening a session with %s: %w", peer, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if derr := p.call(cctx, http.MethodDelete, PeerPathSessions+"/"+p.sess.ID, nil, nil); derr != nil {
			c.o.Log.Warn("cannot close the session; the responder ends it at its deadline", "expires", p.sess.Expires, "err", derr)
		}
		if p.temp != nil {
			if rerr := removeDevice(nl, p.temp.Name); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		res.At = time.Now()
	}()
	res.Address, res.PeerDevice = p.sess.Host, p.sess.TunnelDevice
	if p.sess.Node != "" {
		res.Peer = p.sess.Node
	}
	res.Streams = p.sess.Streams
	res.Duration = time.Duration(p.sess.DurationMS) * time.Millisecond
	res.Warmup = time.Duration(p.sess.WarmupMS) * time.Millisecond
	for _, name := range c.o.Cases {
		for _, dir := range c.o.Directions {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			cr := p.runCase(ctx, name, dir)
			c.o.Log.Debug("peer case measured", "case", name, "direction", dir, "bits_per_second", cr.BitsPerSecond, "bottleneck", cr.Bottleneck, "err", cr.Err)
			res.Cases = append(res.Cases, cr)
		}
	}
	return res, nil
}

// findLocalTunnel picks this node's CNI tunnel and the temporary
// tunnel's kind and MTU from it.
func (p *peerRun) findLocalTunnel() {
	p.res.Kind, p.res.TunnelMTU = detect.KindVXLAN, 0
	if p.c.o.Tunnels == nil {
		return
	}
	ts, err := p.c.o.Tunnels()
	if err == nil && ts.Err.Failed() {
		err = ts.Err
	}
	if err != nil {
		p.c.o.Log.Warn("cannot read this node's tunnels", "err", err)
		return
	}
	t, ok := NodeTunnel(ts, p.c.o.Device)
	if !ok {
		return
	}
	p.local, p.hasCNI = t, true
	p.res.Device, p.res.TunnelMTU = t.Name, t.MTU
	if t.Kind == detect.KindVXLAN || t.Kind == detect.KindGeneve {
		p.res.Kind = t.Kind
	}
}

// runCase measures one case in one direction.
func (p *peerRun) runCase(ctx context.Context, name, dir string) PeerCaseResult {
	cr := PeerCaseResult{PeerCase: detect.PeerCase{Name: name, Direction: dir}}
	req := caseRequest{Name: name, Direction: dir}
	sender := dir == detect.PeerSend
	switch name {
	case detect.PeerCaseTunnel:
		if !p.hasCNI {
			cr.Err = detect.Fail(errors.New("this node has no CNI tunnel device"))
			return cr
		}
		if a, err := tunnelAddress(p.nl, p.local.Name); err == nil {
			req.From = a.String()
		}
	case detect.PeerCaseOffloadOn, detect.PeerCaseOffloadOff:
		if err := p.tempTunnel(ctx); err != nil {
			cr.Err = detect.Fail(err)
			return cr
		}
		on := name == detect.PeerCaseOffloadOn
		req.Offload = &on
		if sender {
			if err := setOffload(p.temp.Name, on); err != nil {
				cr.Err = detect.Fail(err)
				return cr
			}
		}
	}
	var open caseResponse
	if err := p.call(ctx, http.MethodPost, p.sessPath("cases"), req, &open); err != nil {
		cr.Err = detect.Fail(err)
		return cr
	}
	if err := p.measure(ctx, &cr, open, sender); err != nil {
		cr.Err = detect.Fail(err)
		return cr
	}
	if req.Offload != nil && sender {
		if err := checkOffload(p.temp.Name, *req.Offload); err != nil {
			cr.Err = detect.Fail(err)
		}
	}
	return cr
}

// measure runs the streams of an open case and fills cr in.
func (p *peerRun) measure(ctx context.Context, cr *PeerCaseResult, open caseResponse, sender bool) error {
	dst, err := netip.ParseAddrPort(open.Address)
	if err != nil {
		return fmt.Errorf("the responder's data address %q: %w", open.Address, err)
	}
	end, err := dialStreams(ctx, dst, p.res.Streams, sender)
	if err != nil {
		return err
	}
	defer end.close()
	if err := sleep(ctx, p.res.Warmup); err != nil {
		return err
	}
	casePath := p.sessPath("cases", open.ID)
	a, aErr := p.c.smp.sample()
	localA := end.received.Load()
	var peerA, peerB markResponse
	if err := p.call(ctx, http.MethodPost, casePath+"/start", nil, &peerA); err != nil {
		return err
	}
	if err := sleep(ctx, p.res.Duration); err != nil {
		return err
	}
	b, bErr := p.c.smp.sample()
	localB := end.received.Load()
	if err := p.call(ctx, http.MethodPost, casePath+"/stop", nil, &peerB); err != nil {
		return err
	}
	var mine *Usage
	if aErr == nil && bErr == nil {
		u := usage(a, b)
		mine = &u
	}
	if sender {
		cr.Sender, cr.Receiver = mine, peerB.Usage
		cr.Bytes, cr.Seconds = peerB.Bytes-peerA.Bytes, peerB.At.Sub(peerA.At).Seconds()
	} else {
		cr.Sender, cr.Receiver = peerB.Usage, mine
		cr.Bytes, cr.Seconds = localB-localA, b.at.Sub(a.at).Seconds()
	}
	if cr.Seconds > 0 {
		cr.BitsPerSecond = float64(cr.Bytes) * 8 / cr.Seconds
	}
	cr.Bottleneck = Bottleneck(cr.Sender, cr.Receiver)
	if peerB.Spoiled != "" {
		return fmt.Errorf("on the peer: %s", peerB.Spoiled)
	}
	if cr.Bytes <= 0 {
		return fmt.Errorf("no data crossed %s in %.1fs", dst, cr.Seconds)
	}
	return nil
}

// tempTunnel sets up both ends of the temporary tunnel, once.
func (p *peerRun) tempTunnel(ctx context.Context) error {
	if p.temp != nil || p.tempErr != nil {
		return p.tempErr
	}
	p.tempErr = p.makeTempTunnel(ctx)
	return p.tempErr
}

func (p *peerRun) makeTempTunnel(ctx context.Context) error {
	you, err1 := netip.ParseAddr(p.sess.You)
	host, err2 := netip.ParseAddr(p.sess.Host)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("the session's addresses: %w", err)
	}
	if !you.Is4() || !host.Is4() {
		return fmt.Errorf("the temporary tunnel needs an IPv4 underlay, not %s to %s: %w", you, host, detect.ErrNotSupported)
	}
	mtu := p.res.TunnelMTU
	if mtu == 0 {
		l, err := linkHolding(p.nl, you)
		if err != nil {
			return err
		}
		mtu = l.Attrs().MTU - 50
		p.res.TunnelMTU = mtu
	}
	subnet, err := pickSubnet(p.nl)
	if err != nil {
		return err
	}
	t := &tempTunnel{Kind: p.res.Kind, Name: MeasurerDevicePrefix + strconv.Itoa(os.Getpid()), MTU: mtu,
		VNI: p.c.o.VNI, Port: p.c.o.Port, Local: you, Remote: host, Address: nthAddr(subnet, 1), Expires: p.sess.Expires}
	if err := t.add(p.nl); err != nil {
		return err
	}
	p.temp = t
	var tr tunnelResponse
	return p.call(ctx, http.MethodPost, p.sessPath("tunnel"), tunnelRequest{
		Kind: t.Kind, MTU: t.MTU, VNI: t.VNI, Port: t.Port, Subnet: subnet.String(),
	}, &tr)
}

func (p *peerRun) sessPath(parts ...string) string {
	s := PeerPathSessions + "/" + p.sess.ID
	for _, x := range parts {
		s += "/" + x
	}
	return s
}

// call sends one request to the responder and decodes its answer into
// out (when not nil). A refusal is an error that says why; 429 wraps
// ErrBusy.
func (p *peerRun) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e errorResponse
		_ = json.Unmarshal(data, &e)
		err := fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, e.Error)
		if resp.StatusCode == http.StatusTooManyRequests {
			err = fmt.Errorf("%w (retry after %ss): %w", ErrBusy, resp.Header.Get("Retry-After"), err)
		}
		return err
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	return json.Unmarshal(data, out)
}

// peerURL turns HOST[:PORT] into the responder's base URL, and returns
// the host.
func peerURL(peer string, tls bool) (base, host string, err error) {
	if peer == "" {
		return "", "", errors.New("no peer given")
	}
	host, port, err := net.SplitHostPort(peer)
	if err != nil {
		host, port = peer, strconv.Itoa(DefaultPeerPort)
		if ip, perr := netip.ParseAddr(peer); perr == nil && ip.Is6() {
			host = ip.String()
		}
	}
	if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 || host == "" {
		return "", "", fmt.Errorf("peer %q: want HOST or HOST:PORT", peer)
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port), host, nil
}
