package testbed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nodetune/nodetune/detect"
)

// netnsDir is where named network namespaces are bind-mounted, as
// iproute2 and github.com/vishvananda/netns agree.
const netnsDir = "/run/netns"

// create makes s's named namespace, and opens a netlink handle and an
// ethtool socket inside it.
func (s *Side) create() error {
	err := onThread(func() error {
		h, err := netns.NewNamed(s.NS)
		if err != nil {
			if !errors.Is(err, fs.ErrExist) {
				// NewNamed may have created the mount point before the mount failed.
				_ = os.Remove(filepath.Join(netnsDir, s.NS))
			}
			return classify("creating network namespace "+s.NS, err)
		}
		s.ns, s.mounted = h, true
		// The ethtool socket resolves device names in the namespace it was
		// opened in, whichever thread uses it later.
		if s.et, err = ethtool.NewEthtool(); err != nil {
			return classify("opening an ethtool socket in "+s.NS, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if s.nl, err = netlink.NewHandleAt(s.ns); err != nil {
		return classify("opening netlink in "+s.NS, err)
	}
	if _, err := s.configure("lo", netip.Addr{}); err != nil {
		return err
	}
	return nil
}

// configure gives device name the address ip/24 (unless ip is invalid) and
// brings it up.
func (s *Side) configure(name string, ip netip.Addr) (netlink.Link, error) {
	l, err := s.nl.LinkByName(name)
	if err != nil {
		return nil, classify(fmt.Sprintf("finding %s in %s", name, s.NS), err)
	}
	if ip.IsValid() {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(24, 32)}}
		if err := s.nl.AddrAdd(l, addr); err != nil {
			return nil, classify(fmt.Sprintf("adding %s to %s in %s", ip, name, s.NS), err)
		}
	}
	if err := s.nl.LinkSetUp(l); err != nil {
		return nil, classify(fmt.Sprintf("bringing %s up in %s", name, s.NS), err)
	}
	return l, nil
}

// close releases s's handles and removes its namespace. The kernel
// destroys the namespace, and the devices in it, once nothing else holds
// it (a socket created inside it does).
func (s *Side) close() error {
	if s.et != nil {
		s.et.Close()
		s.et = nil
	}
	if s.nl != nil {
		s.nl.Close()
		s.nl = nil
	}
	if s.ns.IsOpen() {
		s.ns.Close()
		s.ns = netns.None()
	}
	if !s.mounted {
		return nil
	}
	s.mounted = false
	return deleteNamed(s.NS)
}

// deleteNamed unmounts and removes the named namespace name. A name that
// is already gone is not an error.
func deleteNamed(name string) error {
	err := netns.DeleteNamed(name)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if errors.Is(err, syscall.EINVAL) {
		// Not a mount point any more: only the file is left.
		err = os.Remove(filepath.Join(netnsDir, name))
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	return classify("removing network namespace "+name, err)
}

// Do runs fn on a locked OS thread switched into s's namespace, and
// switches back afterwards. Sockets fn creates stay in the namespace for
// life, so they may be used from any goroutine once fn returns; goroutines
// fn starts run in the caller's namespace, not in s's.
func (s *Side) Do(fn func() error) error {
	if !s.ns.IsOpen() {
		return fmt.Errorf("entering %s: the testbed is closed", s.NS)
	}
	return onThread(func() error {
		if err := netns.Set(s.ns); err != nil {
			return classify("entering network namespace "+s.NS, err)
		}
		return fn()
	})
}

// DialContext connects to addr from inside s's namespace, for an HTTP
// transport or any client that takes a dial function. The connection
// keeps the namespace it was made in.
func (s *Side) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := s.Do(func() (err error) {
		conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// Netlink is a netlink handle inside s's namespace, for callers that need
// more than the bed offers (a probes.Host, a route). The bed owns it.
func (s *Side) Netlink() *netlink.Handle { return s.nl }

// Ethtool is an ethtool socket inside s's namespace. The bed owns it.
func (s *Side) Ethtool() *ethtool.Ethtool { return s.et }

// Features reads every ethtool feature of dev in s's namespace, by the
// names `ethtool -k` prints.
func (s *Side) Features(dev string) (map[string]bool, error) {
	if s.et == nil {
		return nil, fmt.Errorf("reading features of %s: the testbed is closed", dev)
	}
	f, err := s.et.Features(dev)
	if err != nil {
		return nil, classify(fmt.Sprintf("reading ethtool features of %s in %s", dev, s.NS), err)
	}
	return f, nil
}

// SetFeatures changes ethtool features of dev in s's namespace, like
// `ethtool -K`, and checks that each requested feature took the value asked
// for. Dependent features the kernel switches along (TSO when tx
// checksumming goes off) are not checked.
func (s *Side) SetFeatures(dev string, f map[string]bool) error {
	if s.et == nil {
		return fmt.Errorf("changing features of %s: the testbed is closed", dev)
	}
	if err := s.et.Change(dev, f); err != nil {
		return classify(fmt.Sprintf("changing ethtool features %v of %s in %s", f, dev, s.NS), err)
	}
	got, err := s.Features(dev)
	if err != nil {
		return err
	}
	var stuck []string
	for name, want := range f {
		if got[name] != want {
			stuck = append(stuck, fmt.Sprintf("%s=%t", name, got[name]))
		}
	}
	if len(stuck) > 0 {
		sort.Strings(stuck)
		return fmt.Errorf("changing ethtool features of %s in %s: the driver kept %s: %w",
			dev, s.NS, strings.Join(stuck, ", "), detect.ErrNotSupported)
	}
	return nil
}

// onThread runs fn on a locked OS thread and switches that thread back to
// its original network namespace afterwards. If switching back fails the
// thread stays locked, so Go ends it with the goroutine rather than let
// other goroutines run in the wrong namespace.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- classify("reading the current network namespace", err)
			return
		}
		defer origin.Close()
		ferr := fn()
		if err := switchBack(origin); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("switching back to the original network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// switchBack returns the current thread to origin, if fn left it elsewhere.
// Entering even one's own namespace needs CAP_SYS_ADMIN, so an unprivileged
// caller whose fn failed before switching must not try.
func switchBack(origin netns.NsHandle) error {
	cur, err := netns.Get()
	if err == nil {
		same := cur.Equal(origin)
		cur.Close()
		if same {
			return nil
		}
	}
	return netns.Set(origin)
}

// classify is detect.Classify, with a hint on what privilege is missing.
func classify(what string, err error) error {
	err = detect.Classify(what, err)
	if errors.Is(err, detect.ErrPermission) {
		return fmt.Errorf("%w (needs root: CAP_SYS_ADMIN and CAP_NET_ADMIN)", err)
	}
	return err
}
