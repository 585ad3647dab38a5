package bench

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nodetune/nodetune/detect"
)

// ResponderOptions configure the responder of peer measurements.
type ResponderOptions struct {
	// Guard admits requests; see Guard.
	Guard Guard
	// Tunnels reads this node's tunnels when a session opens, to find the
	// CNI tunnel the tunnel case measures; nil means none.
	Tunnels func() (detect.Tunnels, error)
	// Device names the CNI tunnel to measure; empty picks as NodeTunnel does.
	Device string
	// Node is this node's Node name, told to the measurer.
	Node string
	// ProcFS is where /proc/stat and /proc/net/softnet_stat are read
	// (default /proc).
	ProcFS string
	// MaxStreams and MaxDuration cap what a measurer may ask (default and
	// at most MaxPeerStreams and MaxPeerDuration).
	MaxStreams  int
	MaxDuration time.Duration
	// Log receives what the responder does (default slog.Default()).
	Log *slog.Logger
}

// Responder answers peer measurements: one session at a time, each with
// a deadline after which it removes what it made, whatever the measurer
// does.
type Responder struct {
	o       ResponderOptions
	nl      *netlink.Handle
	sampler sampler

	mu   sync.Mutex
	sess *session
}

// session is one measurer's run.
type session struct {
	id               string
	you, host        netip.Addr
	expires          time.Time
	timer            *time.Timer
	idle             time.Duration
	streams          int
	duration, warmup time.Duration
	tunnelDev        string
	tunnelAddr       netip.Addr
	tunnelErr        string
	temp             *tempTunnel
	measurerTemp     netip.Addr
	cur              *respCase
	release          func()
}

// respCase is the case a session runs now.
type respCase struct {
	id    string
	end   *streamsEnd
	start cpuSample
	// offloadDev is the responder's temporary device when it sends in an
	// offload case, offloadOn what the case set on it.
	offloadDev string
	offloadOn  bool
}

// NewResponder opens the host's netlink and removes the temporary tunnel
// devices an earlier responder left (it was killed mid-run, or its
// container restarted).
func NewResponder(o ResponderOptions) (*Responder, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Guard.Log == nil {
		o.Guard.Log = o.Log
	}
	if o.MaxStreams <= 0 || o.MaxStreams > MaxPeerStreams {
		o.MaxStreams = MaxPeerStreams
	}
	if o.MaxDuration <= 0 || o.MaxDuration > MaxPeerDuration {
		o.MaxDuration = MaxPeerDuration
	}
	s, err := newSampler(o.ProcFS)
	if err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandle()
	if err != nil {
		return nil, detect.Classify("opening netlink", err)
	}
	swept, err := SweepPeerTunnels(nl, ResponderDevicePrefix, true, time.Now())
	if len(swept) > 0 {
		o.Log.Info("removed temporary tunnels an earlier responder left", "devices", swept)
	}
	if err != nil {
		// An agent that lost NET_ADMIN (remediate, then observe) cannot;
		// it still answers the cases that need no device.
		o.Log.Warn("cannot remove temporary tunnels an earlier responder left", "err", err)
	}
	return &Responder{o: o, nl: nl, sampler: s}, nil
}

// Close ends the running session, if any, removing what it made.
func (r *Responder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.endLocked("the responder stops")
	r.nl.Close()
	return err
}

// Handler serves the peer protocol behind the guard; any other path is
// 404, and nothing is served to a request the guard refuses.
func (r *Responder) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PeerPathSessions, r.open)
	mux.HandleFunc("POST "+PeerPathSessions+"/{id}/tunnel", r.withSession(r.tunnel))
	mux.HandleFunc("POST "+PeerPathSessions+"/{id}/cases", r.withSession(r.openCase))
	mux.HandleFunc("POST "+PeerPathSessions+"/{id}/cases/{case}/start", r.withSession(r.mark(false)))
	mux.HandleFunc("POST "+PeerPathSessions+"/{id}/cases/{case}/stop", r.withSession(r.mark(true)))
	mux.HandleFunc("DELETE "+PeerPathSessions+"/{id}", r.withSession(r.close))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not a peer measurement path")
	})
	return r.o.Guard.Wrap(mux)
}

// open starts a session, if none runs.
func (r *Responder) open(w http.ResponseWriter, req *http.Request) {
	var in sessionRequest
	if !decode(w, req, &in) {
		return
	}
	you, err1 := remoteAddr(req)
	host, err2 := localAddr(req)
	if err := errors.Join(err1, err2); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.sess; s != nil {
		retryAfter(w, time.Until(s.expires))
		writeError(w, http.StatusTooManyRequests, ErrBusy.Error())
		return
	}
	select {
	case running <- struct{}{}:
	default:
		retryAfter(w, 10*time.Second)
		writeError(w, http.StatusTooManyRequests, ErrBusy.Error())
		return
	}
	s := &session{id: newID(), you: you, host: host, release: func() { <-running }}
	s.streams = min(max(in.Streams, 1), r.o.MaxStreams)
	s.duration = min(max(time.Duration(in.DurationMS)*time.Millisecond, 100*time.Millisecond), r.o.MaxDuration)
	s.warmup = min(max(time.Duration(in.WarmupMS)*time.Millisecond, 0), MaxPeerWarmup)
	cases := min(max(in.Cases, 1), maxPeerCases)
	s.expires = time.Now().Add(time.Duration(cases)*(s.duration+s.warmup+5*time.Second) + peerSlack)
	s.idle = s.duration + s.warmup + peerIdle
	r.findTunnel(s)
	r.sess = s
	id := s.id
	s.timer = time.AfterFunc(s.wait(), func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.sess != nil && r.sess.id == id {
			if err := r.endLocked("its deadline passed, or its measurer went silent"); err != nil {
				r.o.Log.Error("ending an expired measurement session", "err", err)
			}
		}
	})
	r.o.Log.Info("peer measurement session opened", "measurer", you, "streams", s.streams, "duration", s.duration, "expires", s.expires)
	writeJSON(w, http.StatusCreated, sessionResponse{
		ID: s.id, Expires: s.expires, Streams: s.streams,
		DurationMS: s.duration.Milliseconds(), WarmupMS: s.warmup.Milliseconds(),
		You: you.String(), Host: host.String(), Node: r.o.Node,
		TunnelDevice: s.tunnelDev, TunnelAddress: addrString(s.tunnelAddr), TunnelError: s.tunnelErr,
	})
}

// findTunnel finds this node's CNI tunnel and its address for s.
func (r *Responder) findTunnel(s *session) {
	if r.o.Tunnels == nil {
		s.tunnelErr = "the responder does not read its tunnels"
		return
	}
	ts, err := r.o.Tunnels()
	if err == nil && ts.Err.Failed() {
		err = ts.Err
	}
	if err != nil {
		s.tunnelErr = "reading the tunnels: " + err.Error()
		return
	}
	t, ok := NodeTunnel(ts, r.o.Device)
	if !ok {
		s.tunnelErr = "this node has no tunnel device"
		return
	}
	s.tunnelDev = t.Name
	a, err := tunnelAddress(r.nl, t.Name)
	if err != nil {
		s.tunnelErr = err.Error()
		return
	}
	s.tunnelAddr = a
}

// withSession runs h with the session the path names, if it is the
// running one and the request comes from its measurer.
func (r *Responder) withSession(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		from, err := remoteAddr(req)
		r.mu.Lock()
		defer r.mu.Unlock()
		s := r.sess
		if s == nil || s.id != req.PathValue("id") || err != nil || from != s.you {
			writeError(w, http.StatusNotFound, "no such session")
			return
		}
		s.timer.Reset(s.wait())
		h(w, req, s)
	}
}

// peerIdle is how long a session waits for its measurer beyond one case's
// run time before it counts it gone.
const peerIdle = 10 * time.Second

// wait is how long s lives from now without hearing from its measurer:
// one case's run time and peerIdle, never past its deadline.
func (s *session) wait() time.Duration {
	return max(min(time.Until(s.expires), s.idle), 0)
}

// tunnel creates the responder's end of the temporary tunnel.
func (r *Responder) tunnel(w http.ResponseWriter, req *http.Request, s *session) {
	var in tunnelRequest
	if !decode(w, req, &in) {
		return
	}
	if s.temp != nil {
		writeError(w, http.StatusConflict, "the session has its temporary tunnel already")
		return
	}
	subnet, err := netip.ParsePrefix(in.Subnet)
	switch {
	case in.Kind != detect.KindVXLAN && in.Kind != detect.KindGeneve:
		err = fmt.Errorf("kind %q: want vxlan or geneve", in.Kind)
	case in.MTU < 576 || in.MTU > 65000:
		err = fmt.Errorf("MTU %d: want 576 to 65000", in.MTU)
	case in.VNI < 1 || in.VNI >= 1<<24:
		err = fmt.Errorf("VNI %d: want 1 to %d", in.VNI, 1<<24-1)
	case in.Port < 1024 || in.Port > 65535:
		err = fmt.Errorf("port %d: want 1024 to 65535", in.Port)
	case err == nil:
		err = subnetFree(r.nl, subnet)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	t := &tempTunnel{Kind: in.Kind, Name: ResponderDevicePrefix + strconv.Itoa(os.Getpid()), MTU: in.MTU,
		VNI: in.VNI, Port: in.Port, Local: s.host, Remote: s.you, Address: nthAddr(subnet, 2), Expires: s.expires}
	if err := t.add(r.nl); err != nil {
		r.o.Log.Warn("cannot create the temporary tunnel", "err", err)
		code := http.StatusInternalServerError
		if errors.Is(err, detect.ErrPermission) {
			// An agent in observe mode holds no CAP_NET_ADMIN.
			code = http.StatusForbidden
			err = fmt.Errorf("this node's agent may not create devices (it needs CAP_NET_ADMIN; observe mode has none): %w", err)
		}
		writeError(w, code, err.Error())
		return
	}
	s.temp, s.measurerTemp = t, nthAddr(subnet, 1).Addr()
	r.o.Log.Info("temporary tunnel created", "device", t.Name, "kind", t.Kind, "mtu", t.MTU, "vni", t.VNI, "port", t.Port)
	writeJSON(w, http.StatusCreated, tunnelResponse{Device: t.Name, Address: t.Address.Addr().String()})
}

// openCase opens a data port for one case, closing the previous case.
func (r *Responder) openCase(w http.ResponseWriter, req *http.Request, s *session) {
	var in caseRequest
	if !decode(w, req, &in) {
		return
	}
	s.closeCase()
	from := []netip.Addr{s.you}
	if a, err := netip.ParseAddr(in.From); err == nil {
		from = append(from, a.Unmap())
	}
	var addr netip.Addr
	switch in.Name {
	case detect.PeerCaseHost:
		addr = s.host
	case detect.PeerCaseTunnel:
		if !s.tunnelAddr.IsValid() {
			writeError(w, http.StatusConflict, "no CNI tunnel address here: "+s.tunnelErr)
			return
		}
		addr = s.tunnelAddr
	case detect.PeerCaseOffloadOn, detect.PeerCaseOffloadOff:
		if s.temp == nil {
			writeError(w, http.StatusConflict, "the session has no temporary tunnel")
			return
		}
		addr = s.temp.Address.Addr()
		from = append(from, s.measurerTemp)
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("case %q: unknown", in.Name))
		return
	}
	if in.Direction != detect.PeerSend && in.Direction != detect.PeerReceive {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("direction %q: want send or receive", in.Direction))
		return
	}
	sender := in.Direction == detect.PeerReceive // the measurer receives: the responder sends
	c := &respCase{id: newID()}
	if s.temp != nil && in.Offload != nil && sender && addr == s.temp.Address.Addr() {
		if err := setOffload(s.temp.Name, *in.Offload); err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		c.offloadDev, c.offloadOn = s.temp.Name, *in.Offload
	}
	end, err := listenStreams(addr, from, s.streams, sender)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	c.end = end
	s.cur = c
	writeJSON(w, http.StatusCreated, caseResponse{ID: s.cur.id, Address: netip.AddrPortFrom(addr, uint16(end.port())).String()})
}

// mark answers the start (stop=false) or the end of a case's measuring
// window with what the responder received and, at the end, its usage; the
// end also closes the case.
func (r *Responder) mark(stop bool) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, req *http.Request, s *session) {
		c := s.cur
		if c == nil || c.id != req.PathValue("case") {
			writeError(w, http.StatusNotFound, "no such case")
			return
		}
		smp, err := r.sampler.sample()
		out := markResponse{Bytes: c.end.received.Load(), At: time.Now()}
		if !stop {
			c.start = smp
			if err != nil {
				r.o.Log.Warn("cannot sample the CPUs", "err", err)
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		if err == nil && c.start.cpu != nil {
			u := usage(c.start, smp)
			out.Usage = &u
		}
		if c.offloadDev != "" {
			if err := checkOffload(c.offloadDev, c.offloadOn); err != nil {
				out.Spoiled = err.Error()
			}
		}
		s.closeCase()
		writeJSON(w, http.StatusOK, out)
	}
}

// close ends the session at the measurer's request.
func (r *Responder) close(w http.ResponseWriter, _ *http.Request, _ *session) {
	if err := r.endLocked("the measurer is done"); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// closeCase ends the running case, if any.
func (s *session) closeCase() {
	if s.cur != nil {
		s.cur.end.close()
		s.cur = nil
	}
}

// endLocked ends the running session: its case, its temporary tunnel,
// its hold on the node. r.mu is held.
func (r *Responder) endLocked(why string) error {
	s := r.sess
	if s == nil {
		return nil
	}
	r.sess = nil
	s.timer.Stop()
	s.closeCase()
	var err error
	if s.temp != nil {
		err = removeDevice(r.nl, s.temp.Name)
	}
	s.release()
	r.o.Log.Info("peer measurement session ended", "measurer", s.you, "why", why, "err", err)
	return err
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// decode reads a small JSON body into v, answering 400 when it cannot.
func decode(w http.ResponseWriter, req *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxPeerBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "reading the request: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorResponse{Error: msg})
}

// retryAfter sets Retry-After to d in whole seconds, at least one.
func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(int((d+time.Second-1)/time.Second), 1)))
}
