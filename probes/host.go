package probes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/procfs"

	"github.com/nodetune/nodetune/detect"
)

// Paths are where the host's filesystems are mounted. In a pod they are
// /host/proc, /host/sys and /host; in tests, a fixture tree.
type Paths struct {
	ProcFS string
	SysFS  string
	RootFS string
}

// DefaultKubeProxyURL is where kube-proxy serves /proxyMode and /metrics.
const DefaultKubeProxyURL = "http://127.0.0.1:10249"

// DefaultPaths are the host's own filesystems.
var DefaultPaths = Paths{ProcFS: "/proc", SysFS: "/sys", RootFS: "/"}

// Host is a node as the probes see it: its filesystems and the kernel
// handles to read it through.
type Host struct {
	Paths
	Netlink Netlink
	Ethtool Ethtool
	// KubeProxyURL is kube-proxy's metrics address, such as
	// "http://127.0.0.1:10249"; empty skips the kube-proxy probe.
	KubeProxyURL string
	// HTTP is the client for kube-proxy; it should have a short timeout.
	HTTP *http.Client
	// Capture traces bad UDP checksums to their senders when the error
	// counters rise; nil leaves such rises unattributed.
	Capture PacketCapture
	// NodeName is the node's name as the caller knows it ($NODE_NAME in
	// the DaemonSet), one of the sources of Ownership's node name.
	NodeName string
	// PeerFile is the peer measurement file in nodetune's state directory
	// (peerstate.Path); empty skips reading it.
	PeerFile string

	proc procfs.FS
}

// NewHost returns a Host that reads through nl and et. It refuses a
// procfs root that is empty or unreadable (ErrNoProcFS): nodetune cannot
// run there, and probing it would report every fact unknown and no finding.
func NewHost(paths Paths, nl Netlink, et Ethtool) (*Host, error) {
	if err := checkProcFS(paths.ProcFS); err != nil {
		return nil, err
	}
	return newHost(paths, nl, et)
}

// newHost is NewHost without the check of the procfs root, for tests that
// break a procfs file on purpose to see how one probe copes.
func newHost(paths Paths, nl Netlink, et Ethtool) (*Host, error) {
	fs, err := procfs.NewFS(paths.ProcFS)
	if err != nil {
		return nil, fmt.Errorf("opening procfs at %s: %w", paths.ProcFS, err)
	}
	return &Host{
		Paths:        paths,
		Netlink:      nl,
		Ethtool:      et,
		KubeProxyURL: DefaultKubeProxyURL,
		HTTP:         &http.Client{Timeout: 500 * time.Millisecond},
		proc:         fs,
	}, nil
}

// ErrNoProcFS marks a --path.procfs that is not a readable procfs: every
// fact would be unknown, and a report of no findings would be a lie.
var ErrNoProcFS = errors.New("not a readable procfs")

// checkProcFS makes sure root is a procfs nodetune can read, by reading
// its stat file, which every Linux procfs has: an empty or unreadable
// directory is refused here, before any probe runs.
func checkProcFS(root string) error {
	f, err := os.Open(filepath.Join(root, "stat"))
	if err != nil {
		return fmt.Errorf("procfs at %s: %w: %w", root, ErrNoProcFS, classify("reading stat", err))
	}
	defer f.Close()
	var b [8]byte
	if n, err := io.ReadFull(f, b[:]); n < 4 || string(b[:4]) != "cpu " {
		if err == nil || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = fmt.Errorf("stat does not start with a cpu line")
		}
		return fmt.Errorf("procfs at %s: %w: %w", root, ErrNoProcFS, classify("reading stat", err))
	}
	return nil
}

func (h *Host) sys(parts ...string) string {
	return filepath.Join(append([]string{h.SysFS}, parts...)...)
}

// Prober takes snapshots of a host. It keeps the counters of its last
// snapshot, so that each snapshot's rates cover the time since the one
// before; the first snapshot waits out a window of its own.
type Prober struct {
	host *Host
	// Clock stamps each counter sample; tests replace it.
	Clock func() time.Time
	last  *sample
	// syncs and fullSyncs follow kube-proxy's sync histograms from one
	// snapshot to the next.
	syncs, fullSyncs syncTracker
	// nftFailures is kube-proxy's nftables sync failure count at the
	// previous snapshot, nil when there was none.
	nftFailures *uint64
	// CaptureDuration and CapturePackets bound the capture that traces
	// bad UDP checksums when their counters rose.
	CaptureDuration time.Duration
	CapturePackets  int
	// quietSince is when the UDP checksum counters were last seen rising
	// with bad packets not traced to non-tunnel ports; zero before the
	// first snapshot and after such a rise.
	quietSince time.Time
}

// syncTracker keeps a sync histogram at the previous snapshot, and the
// last mean measured over an interval with syncs.
type syncTracker struct {
	prev *detect.SyncHistogram
	mean float64
}

// update sets *mean to the mean of the syncs in h since the previous
// snapshot, so that one slow sync when kube-proxy started does not mark it
// slow for the rest of its life. An interval without syncs keeps the last
// mean measured.
func (t *syncTracker) update(running bool, h detect.SyncHistogram, mean *float64) {
	if !running || h.Count == 0 {
		t.prev = nil
		return
	}
	if t.prev != nil {
		if m, ok := h.Mean(*t.prev); ok {
			t.mean = m
		}
		*mean = t.mean
	} else {
		t.mean = *mean
	}
	t.prev = &h
}

// kubeProxySyncs sets kp's mean sync times over the interval since the
// previous snapshot.
func (p *Prober) kubeProxySyncs(kp *detect.KubeProxy) {
	p.syncs.update(kp.Running, kp.Syncs, &kp.SyncSeconds)
	p.fullSyncs.update(kp.Running, kp.FullSyncs, &kp.FullSyncSeconds)
	if !kp.Running || !kp.MetricsRead {
		p.nftFailures = nil
		return
	}
	if prev := p.nftFailures; prev != nil && kp.NFTablesSyncFailures >= *prev {
		kp.NFTablesSyncFailuresDelta = int64(kp.NFTablesSyncFailures - *prev)
	}
	n := kp.NFTablesSyncFailures
	p.nftFailures = &n
}

// trackQuiet sets u.QuietFor: how long the counters have gone without a
// rise that was not traced to non-tunnel ports, from the start of the first
// window this prober watched (from, to: the window's bounds).
func (p *Prober) trackQuiet(u *detect.UDP, from, to time.Time) {
	switch u.ChecksumVerdict() {
	case detect.AttrQuiet, detect.AttrOther:
		if p.quietSince.IsZero() {
			p.quietSince = from
		}
		u.QuietFor = to.Sub(p.quietSince)
	default:
		p.quietSince = to
		u.QuietFor = 0
	}
}

// NewProber returns a Prober for h.
func NewProber(h *Host) *Prober {
	return &Prober{host: h, Clock: time.Now, CaptureDuration: DefaultCaptureDuration, CapturePackets: DefaultCapturePackets}
}

// Baseline samples the counters of from (usually the same host) as the
// start of the next snapshot's window, so that Snapshot does not wait.
func (p *Prober) Baseline(from *Host) { p.last = from.sample(p.Clock()) }

// probe is one named reading that fills part of a snapshot.
type probe struct {
	name string
	run  func(h *Host, s *detect.Snapshot) detect.Err
}

// instantProbes read state that needs no window.
var instantProbes = []probe{
	{"kernel", func(h *Host, s *detect.Snapshot) detect.Err { s.Kernel = h.Kernel(); return s.Kernel.Err }},
	{"memory", func(h *Host, s *detect.Snapshot) detect.Err { s.Memory = h.Memory(); return s.Memory.Err }},
	{"tunnels", func(h *Host, s *detect.Snapshot) detect.Err {
		s.Tunnels = h.Tunnels()
		s.PodPath = h.PodPath(s.Tunnels.Devices)
		s.NICs = h.NICs(s.Tunnels.Devices)
		return s.Tunnels.Err
	}},
	{"conntrack", func(h *Host, s *detect.Snapshot) detect.Err { h.ConntrackTable(&s.Conntrack); return s.Conntrack.Err }},
	{"sysctl", func(h *Host, s *detect.Snapshot) detect.Err { return h.SoftnetLimits(&s.Softnet) }},
	{"kube_proxy", func(h *Host, s *detect.Snapshot) detect.Err { s.KubeProxy = h.KubeProxy(); return s.KubeProxy.Err }},
	{"ownership", func(h *Host, s *detect.Snapshot) detect.Err { s.Ownership = h.Ownership(); return s.Ownership.FilesErr }},
	{"agents", func(h *Host, s *detect.Snapshot) detect.Err {
		s.Host = h.Agents()
		return detect.Fail(errors.Join(s.Host.CNIErr.Unwrap(), s.Host.ProcErr.Unwrap()))
	}},
}

// Snapshot runs every probe and returns the node's state. The rates in it
// cover the time since the previous snapshot; on the first call Snapshot
// samples the counters, waits window while the other probes run, and
// samples again. It returns early with ctx's error if ctx ends.
func (p *Prober) Snapshot(ctx context.Context, window time.Duration) (*detect.Snapshot, error) {
	s := &detect.Snapshot{}
	var runs []detect.ProbeRun
	record := func(name string, start time.Time, err detect.Err) {
		runs = append(runs, detect.ProbeRun{Name: name, Duration: time.Since(start), Err: err})
	}
	var wait <-chan time.Time
	if p.last == nil {
		p.last = p.host.sample(p.Clock())
		wait = time.After(window)
	}

	var wg sync.WaitGroup
	results := make([]detect.ProbeRun, len(instantProbes))
	for i, pr := range instantProbes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := pr.run(p.host, s)
			results[i] = detect.ProbeRun{Name: pr.name, Duration: time.Since(start), Err: err}
		}()
	}
	wg.Wait()
	runs = append(runs, results...)
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	start := time.Now()
	cur := p.host.sample(p.Clock())
	record("counters", start, cur.err())
	applyRates(s, p.last, cur)
	if s.UDP.Readable() == nil && s.UDP.Rose() {
		start := time.Now()
		s.UDP.Capture = p.traceChecksums(ctx, s.Tunnels)
		record("udp_checksum_capture", start, s.UDP.Capture.Err)
	}
	p.trackQuiet(&s.UDP, p.last.at, cur.at)
	p.last = cur
	p.kubeProxySyncs(&s.KubeProxy)

	if p.host.PeerFile != "" {
		start := time.Now()
		s.Peers = p.host.Peers()
		record("peers", start, s.Peers.Err)
	}

	s.CNI = detect.DetectCNI(s)
	s.Taken = cur.at
	s.Probes = runs
	return s, nil
}
