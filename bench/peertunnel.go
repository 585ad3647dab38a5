package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"

	"github.com/nodetune/nodetune/detect"
)

// Name prefixes of the temporary tunnel devices: the responder's end and
// the measurer's, so that each sweeps only its own.
const (
	ResponderDevicePrefix = detect.PeerResponderDevicePrefix
	MeasurerDevicePrefix  = detect.PeerMeasurerDevicePrefix
)

// aliasTag starts the alias of every temporary tunnel device; the rest
// says who made it and until when it may live.
const aliasTag = detect.PeerTunnelAliasTag

// peerSubnets is where the temporary tunnel's /30 is picked from: a
// link-local range no cloud metadata service or node-local DNS uses.
var peerSubnets = netip.MustParsePrefix("169.254.96.0/20")

// tunnelAlias is the alias a temporary device carries: the pid of the
// process that made it and the Unix time after which it is a leftover.
func tunnelAlias(pid int, expires time.Time) string {
	return fmt.Sprintf("%s pid=%d expires=%d", aliasTag, pid, expires.Unix())
}

// parseTunnelAlias reads what tunnelAlias wrote.
func parseTunnelAlias(s string) (pid int, expires time.Time, err error) {
	f := strings.Fields(s)
	if len(f) != 3 || f[0] != aliasTag {
		return 0, time.Time{}, fmt.Errorf("alias %q: not a nodetune peer tunnel", s)
	}
	p, ok := strings.CutPrefix(f[1], "pid=")
	if !ok {
		return 0, time.Time{}, fmt.Errorf("alias %q: no pid", s)
	}
	e, ok := strings.CutPrefix(f[2], "expires=")
	if !ok {
		return 0, time.Time{}, fmt.Errorf("alias %q: no expiry", s)
	}
	pid, err = strconv.Atoi(p)
	if err != nil || pid <= 0 {
		return 0, time.Time{}, fmt.Errorf("alias %q: bad pid", s)
	}
	sec, err := strconv.ParseInt(e, 10, 64)
	if err != nil || sec < 0 {
		return 0, time.Time{}, fmt.Errorf("alias %q: bad expiry", s)
	}
	return pid, time.Unix(sec, 0), nil
}

// tempTunnel is one end of a temporary tunnel.
type tempTunnel struct {
	Kind, Name string
	MTU        int
	VNI, Port  int
	// Local and Remote are the two nodes' underlay addresses; Address is
	// this end's address inside the /30.
	Local, Remote netip.Addr
	Address       netip.Prefix
	Expires       time.Time
}

// add creates the device in the network namespace nl works in, over the
// device that holds t.Local, and brings it up with its address.
func (t tempTunnel) add(nl *netlink.Handle) error {
	under, err := linkHolding(nl, t.Local)
	if err != nil {
		return err
	}
	attrs := netlink.LinkAttrs{Name: t.Name, MTU: t.MTU, Alias: tunnelAlias(os.Getpid(), t.Expires)}
	var l netlink.Link
	switch t.Kind {
	case detect.KindVXLAN:
		l = &netlink.Vxlan{LinkAttrs: attrs, VxlanId: t.VNI, VtepDevIndex: under.Attrs().Index,
			SrcAddr: t.Local.AsSlice(), Group: t.Remote.AsSlice(), Port: t.Port}
	case detect.KindGeneve:
		l = &netlink.Geneve{LinkAttrs: attrs, ID: uint32(t.VNI), Remote: t.Remote.AsSlice(), Dport: uint16(t.Port)}
	default:
		return fmt.Errorf("a temporary %q tunnel: the offload cases need a UDP tunnel (vxlan or geneve): %w", t.Kind, detect.ErrNotSupported)
	}
	if err := nl.LinkAdd(l); err != nil {
		return detect.Classify(fmt.Sprintf("creating the temporary %s device %s over %s", t.Kind, t.Name, under.Attrs().Name), err)
	}
	// Not every kind takes the alias at creation; its name carries the
	// pid meanwhile.
	if err := nl.LinkSetAlias(l, attrs.Alias); err != nil {
		return errors.Join(detect.Classify("labelling "+t.Name, err), removeDevice(nl, t.Name))
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: t.Address.Addr().AsSlice(), Mask: net.CIDRMask(t.Address.Bits(), 32)}}
	if err := nl.AddrAdd(l, addr); err != nil {
		return errors.Join(detect.Classify("adding "+t.Address.String()+" to "+t.Name, err), removeDevice(nl, t.Name))
	}
	if err := nl.LinkSetUp(l); err != nil {
		return errors.Join(detect.Classify("bringing "+t.Name+" up", err), removeDevice(nl, t.Name))
	}
	return nil
}

// devicePID reads the pid from a temporary device's name, prefix-<pid>
// (or the bare <pid>).
func devicePID(name string) (int, bool) {
	if _, rest, ok := strings.Cut(name, "-"); ok {
		name = rest
	}
	pid, err := strconv.Atoi(name)
	return pid, err == nil && pid > 0 && name[0] != '+'
}

// linkHolding is the device that holds address a.
func linkHolding(nl *netlink.Handle, a netip.Addr) (netlink.Link, error) {
	addrs, err := nl.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, detect.Classify("listing addresses", err)
	}
	for _, x := range addrs {
		if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a.Unmap() {
			l, err := nl.LinkByIndex(x.LinkIndex)
			if err != nil {
				return nil, detect.Classify(fmt.Sprintf("reading the device of %s", a), err)
			}
			return l, nil
		}
	}
	return nil, fmt.Errorf("no device here holds the underlay address %s", a)
}

// removeDevice deletes the device name if it is a temporary tunnel; one
// that is gone already is not an error.
func removeDevice(nl *netlink.Handle, name string) error {
	l, err := nl.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return detect.Classify("finding "+name, err)
	}
	if _, ok := devicePID(name); !ok && !strings.HasPrefix(l.Attrs().Alias, aliasTag) {
		return fmt.Errorf("%s is not a nodetune peer tunnel (alias %q); left alone", name, l.Attrs().Alias)
	}
	if err := nl.LinkDel(l); err != nil && !errors.Is(err, syscall.ENODEV) {
		return detect.Classify("removing "+name, err)
	}
	return nil
}

// SweepPeerTunnels removes the temporary tunnel devices named prefix...
// that are leftovers: their maker is gone, their expiry has passed, or,
// when own is true, they carry this process's pid (a process that just
// started has none yet, so such a device is an earlier incarnation's in a
// container whose pids repeat). It returns the names it removed.
func SweepPeerTunnels(nl *netlink.Handle, prefix string, own bool, now time.Time) ([]string, error) {
	links, err := nl.LinkList()
	if err != nil {
		return nil, detect.Classify("listing links", err)
	}
	var removed []string
	var errs []error
	for _, l := range links {
		a := l.Attrs()
		if !strings.HasPrefix(a.Name, prefix) {
			continue
		}
		pid, expires, err := parseTunnelAlias(a.Alias)
		if err != nil {
			// Killed between creating it and labelling it: the name
			// carries the pid.
			p, ok := devicePID(a.Name)
			if !ok || a.Alias != "" {
				continue // not ours
			}
			pid, expires = p, now.Add(time.Hour)
		}
		if !leftover(pid, expires, own, now) {
			continue
		}
		if err := nl.LinkDel(l); err != nil && !errors.Is(err, syscall.ENODEV) {
			errs = append(errs, detect.Classify("removing the leftover "+a.Name, err))
			continue
		}
		removed = append(removed, a.Name)
	}
	sort.Strings(removed)
	return removed, errors.Join(errs...)
}

// leftover decides whether a temporary device made by pid, living until
// expires, is a leftover now.
func leftover(pid int, expires time.Time, own bool, now time.Time) bool {
	switch {
	case !now.Before(expires):
		return true
	case pid == os.Getpid():
		return own
	}
	err := syscall.Kill(pid, 0)
	return err != nil && !errors.Is(err, syscall.EPERM)
}

// pickSubnet picks a /30 for a temporary tunnel that overlaps no address
// the host holds.
func pickSubnet(nl *netlink.Handle) (netip.Prefix, error) {
	for range 16 {
		off := rand.N(1 << (32 - peerSubnets.Bits() - 2))
		base := peerSubnets.Addr().As4()
		v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
		v += uint32(off) << 2
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 30)
		if err := subnetFree(nl, p); err == nil {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /30 in %s for the temporary tunnel", peerSubnets)
}

// subnetFree fails when the host holds an address inside p.
func subnetFree(nl *netlink.Handle, p netip.Prefix) error {
	if !p.IsValid() || p.Bits() != 30 || !peerSubnets.Contains(p.Addr()) || p.Masked() != p {
		return fmt.Errorf("subnet %s: want a /30 inside %s", p, peerSubnets)
	}
	addrs, err := nl.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return detect.Classify("listing addresses", err)
	}
	for _, x := range addrs {
		if ip, ok := netip.AddrFromSlice(x.IP); ok && p.Contains(ip.Unmap()) {
			return fmt.Errorf("subnet %s: this node already holds %s", p, ip)
		}
	}
	return nil
}

// nthAddr is the n-th address of p (1 or 2 in a /30).
func nthAddr(p netip.Prefix, n int) netip.Prefix {
	a := p.Masked().Addr()
	for range n {
		a = a.Next()
	}
	return netip.PrefixFrom(a, p.Bits())
}

// setOffload turns tx checksum offload of dev on or off, like
// `ethtool -K dev tx-checksum-ip-generic on|off`, in the namespace the
// process runs in.
func setOffload(dev string, on bool) error {
	et, err := ethtool.NewEthtool()
	if err != nil {
		return detect.Classify("opening an ethtool socket", err)
	}
	defer et.Close()
	if err := et.Change(dev, map[string]bool{detect.FeatureTxChecksumGeneric: on}); err != nil {
		return detect.Classify(fmt.Sprintf("setting %s %t on %s", detect.FeatureTxChecksumGeneric, on, dev), err)
	}
	got, err := et.Features(dev)
	if err != nil {
		return detect.Classify("reading the features of "+dev, err)
	}
	if got[detect.FeatureTxChecksumGeneric] != on {
		return fmt.Errorf("%s kept %s %t: %w", dev, detect.FeatureTxChecksumGeneric, !on, detect.ErrNotSupported)
	}
	return nil
}

// checkOffload fails when dev's tx checksum offload is no longer on (or
// off) as a case set it: something else manages the device (an agent
// remediating every tunnel it sees), and the case measured a mix.
func checkOffload(dev string, on bool) error {
	et, err := ethtool.NewEthtool()
	if err != nil {
		return detect.Classify("opening an ethtool socket", err)
	}
	defer et.Close()
	got, err := et.Features(dev)
	if err != nil {
		return detect.Classify("reading the features of "+dev, err)
	}
	if got[detect.FeatureTxChecksumGeneric] != on {
		return fmt.Errorf("%s's %s changed to %t during the case: something else manages the device, so the case measured a mix",
			dev, detect.FeatureTxChecksumGeneric, !on)
	}
	return nil
}

// tunnelAddress is the first IPv4 address on device name.
func tunnelAddress(nl *netlink.Handle, name string) (netip.Addr, error) {
	l, err := nl.LinkByName(name)
	if err != nil {
		return netip.Addr{}, detect.Classify("finding "+name, err)
	}
	addrs, err := nl.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, detect.Classify("listing the addresses of "+name, err)
	}
	for _, x := range addrs {
		if ip, ok := netip.AddrFromSlice(x.IP); ok {
			return ip.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%s has no IPv4 address", name)
}
