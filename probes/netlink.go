package probes

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// KindLister is a Netlink that can ask the kernel for the links of one kind
// only. Tunnels uses it when the seam offers it: on a node with thousands
// of pod veths, a full link dump costs tens of milliseconds, while a dump
// the kernel filters by kind costs well under one.
type KindLister interface {
	LinkListByKind(kind string) ([]netlink.Link, error)
	LinkByIndex(index int) (netlink.Link, error)
}

// rtextSkipStats asks the kernel to leave the link statistics out of a dump
// (RTEXT_FILTER_SKIP_STATS, Linux 4.13); older kernels ignore the bit.
const rtextSkipStats = 1 << 3

// FilteringNetlink is a netlink handle that also lists links by kind.
//
// The kernel filters a dump by IFLA_INFO_KIND since Linux 4.15, but only for
// a kind it knows: for a kind whose driver is absent (geneve on a kernel
// built without it) it dumps every link, which costs as much as LinkList.
// Such a kind has no links, so once the kernel has shown that it filters,
// a kind it did not filter is remembered as absent for UnknownKindTTL. An
// older kernel never filters; LinkListByKind then filters the full dump
// itself, so its answer is right everywhere.
type FilteringNetlink struct {
	*netlink.Handle
	mu   sync.Mutex
	sock *nl.NetlinkSocket
	seq  uint32
	// filters is true once the kernel has filtered a dump by kind.
	filters bool
	// absent maps a kind the kernel does not know to when it was seen so.
	absent map[string]time.Time
	now    func() time.Time
}

// UnknownKindTTL is how long a link kind the kernel does not know is taken
// to stay unknown; a driver loaded later is noticed within it.
const UnknownKindTTL = time.Minute

var _ KindLister = (*FilteringNetlink)(nil)

// NewNetlink opens a FilteringNetlink in network namespace ns;
// netns.None() is the caller's own.
func NewNetlink(ns netns.NsHandle) (*FilteringNetlink, error) {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("opening a netlink handle: %w", err)
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("opening an rtnetlink socket: %w", err)
	}
	tv := unix.NsecToTimeval(nl.SocketTimeoutTv.Nano())
	if err := s.SetReceiveTimeout(&tv); err != nil {
		s.Close()
		h.Close()
		return nil, fmt.Errorf("setting the rtnetlink receive timeout: %w", err)
	}
	return &FilteringNetlink{Handle: h, sock: s, absent: map[string]time.Time{}, now: time.Now}, nil
}

// Close closes the handle and the socket.
func (f *FilteringNetlink) Close() {
	f.sock.Close()
	f.Handle.Close()
}

// LinkListByKind dumps the links whose kind (as `ip -d link` prints it) is
// kind, without their statistics.
func (f *FilteringNetlink) LinkListByKind(kind string) ([]netlink.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if at, ok := f.absent[kind]; ok && f.now().Sub(at) < UnknownKindTTL {
		return nil, nil
	}
	req := &nl.NetlinkRequest{
		NlMsghdr: unix.NlMsghdr{
			Len:   uint32(unix.SizeofNlMsghdr),
			Type:  unix.RTM_GETLINK,
			Flags: unix.NLM_F_REQUEST | unix.NLM_F_DUMP,
		},
		Sockets: map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Seq: f.seq, Socket: f.sock}},
	}
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(rtextSkipStats)))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated(kind))
	req.AddData(info)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	f.seq = req.Sockets[unix.NETLINK_ROUTE].Seq
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("dumping %s links: %w", kind, err)
	}
	var out []netlink.Link
	foreign := false
	for _, m := range msgs {
		l, derr := netlink.LinkDeserialize(nil, m)
		if derr != nil {
			return nil, fmt.Errorf("decoding a %s link: %w", kind, derr)
		}
		if l.Type() == kind {
			out = append(out, l)
		} else {
			foreign = true
		}
	}
	switch {
	case err != nil:
	case !foreign:
		// Every namespace has lo, so an unfiltered dump is never pure.
		f.filters = true
		delete(f.absent, kind)
	case f.filters:
		f.absent[kind] = f.now()
	}
	return out, err
}
