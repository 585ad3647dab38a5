package probes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"

	"github.com/nodetune/nodetune/detect"
)

// ChannelReader is an Ethtool that reads queue counts (ethtool -l).
// *ethtool.Ethtool is one; NICs uses it when the seam offers it.
type ChannelReader interface {
	GetChannels(dev string) (ethtool.Channels, error)
}

var _ ChannelReader = (*ethtool.Ethtool)(nil)

// NICs describes the devices the node receives by: the underlays of
// tunnels and the devices of the IPv4 and IPv6 default routes. For each it
// reads the queue counts, the interrupts and their CPUs, and the RPS masks.
func (h *Host) NICs(tunnels []detect.Tunnel) detect.NICs {
	var names []string
	add := func(name string) {
		if name != "" && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	for _, t := range tunnels {
		if t.Underlay != nil {
			add(t.Underlay.Name)
		}
	}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		if idx := h.defaultRouteIndex(family); idx != 0 {
			name, err := h.linkName(idx)
			if err != nil {
				return detect.NICs{Err: fail("naming the default route's device", err)}
			}
			add(name)
		}
	}
	out := detect.NICs{Devices: []detect.NIC{}}
	irqNames := h.irqNames()
	for _, name := range names {
		nic := detect.NIC{Name: name, RxQueues: h.rxQueues(name), Lower: h.lowerDevices(name)}
		nic.Channels, nic.ChannelsErr = h.channels(name)
		nic.IRQs, nic.IRQErr = h.deviceIRQs(name, irqNames)
		out.Devices = append(out.Devices, nic)
	}
	return out
}

// linkName returns the name of link index, asking for that link alone
// where the seam can, so that a node's thousands of pod veths are not
// dumped for it.
func (h *Host) linkName(index int) (string, error) {
	if kl, ok := h.Netlink.(KindLister); ok {
		l, err := kl.LinkByIndex(index)
		if err != nil {
			return "", err
		}
		return l.Attrs().Name, nil
	}
	links, err := retryDump(h.Netlink.LinkList)
	if err != nil {
		return "", err
	}
	for _, l := range links {
		if l.Attrs().Index == index {
			return l.Attrs().Name, nil
		}
	}
	return "", fmt.Errorf("no link has index %d", index)
}

// channels reads dev's queue counts through the seam.
func (h *Host) channels(dev string) (*detect.Channels, detect.Err) {
	cr, ok := h.Ethtool.(ChannelReader)
	if !ok {
		return nil, detect.Fail(fmt.Errorf("reading queue counts of %s: %w", dev, detect.ErrNotSupported))
	}
	c, err := cr.GetChannels(dev)
	if err != nil {
		return nil, fail("reading queue counts of "+dev+" (ethtool -l)", err)
	}
	return &detect.Channels{MaxRx: c.MaxRx, MaxCombined: c.MaxCombined, Rx: c.RxCount, Combined: c.CombinedCount}, detect.Err{}
}

// irqNames maps IRQ numbers to their action names in /proc/interrupts; an
// unreadable file gives none, and the IRQs go unnamed.
func (h *Host) irqNames() map[int]string {
	b, err := os.ReadFile(filepath.Join(h.ProcFS, "interrupts"))
	if err != nil {
		return nil
	}
	return ParseInterruptNames(string(b))
}

// ParseInterruptNames returns the action name of each numbered IRQ in
// /proc/interrupts text: the last field of its line, after the per-CPU
// counts and the controller's description.
func ParseInterruptNames(text string) map[int]string {
	out := map[int]string{}
	for line := range strings.Lines(text) {
		label, rest, ok := strings.Cut(line, ":")
		n, err := strconv.Atoi(strings.TrimSpace(label))
		if !ok || err != nil || n < 0 {
			continue
		}
		if f := strings.Fields(rest); len(f) > 0 {
			if _, err := strconv.ParseUint(f[len(f)-1], 10, 64); err != nil {
				out[n] = f[len(f)-1]
			}
		}
	}
	return out
}

// deviceIRQs lists dev's interrupts: the MSI vectors of its PCI device,
// found at <sysfs>/class/net/DEV/device/msi_irqs or, for a virtio device,
// at its parent's. A device without a device directory is virtual and has
// none.
func (h *Host) deviceIRQs(dev string, names map[int]string) ([]detect.IRQ, detect.Err) {
	devDir := h.sys("class/net", dev, "device")
	if _, err := os.Stat(devDir); errors.Is(err, os.ErrNotExist) {
		return nil, detect.Err{}
	}
	var entries []os.DirEntry
	var err error
	for _, dir := range msiDirs(devDir) {
		if entries, err = os.ReadDir(dir); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fail("listing the interrupts of "+dev, err)
	}
	var out []detect.IRQ
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		irq := detect.IRQ{Number: n, Name: names[n]}
		if irq.CPUs, err = h.irqCPUs(n); err != nil {
			return out, detect.Fail(err)
		}
		out = append(out, irq)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, detect.Err{}
}

// msiDirs are where a device's MSI vectors may be listed: its own
// msi_irqs, or its parent's (a virtio-net device's PCI function).
func msiDirs(devDir string) []string {
	dirs := []string{filepath.Join(devDir, "msi_irqs")}
	if real, err := filepath.EvalSymlinks(devDir); err == nil {
		dirs = append(dirs, filepath.Join(filepath.Dir(real), "msi_irqs"))
	}
	return dirs
}

// irqCPUs reads the CPUs IRQ n is delivered to: effective_affinity_list
// (Linux 4.15+, what the controller really uses), else smp_affinity_list.
func (h *Host) irqCPUs(n int) ([]int, error) {
	dir := filepath.Join(h.ProcFS, "irq", strconv.Itoa(n))
	var b []byte
	var err error
	for _, f := range []string{"effective_affinity_list", "smp_affinity_list"} {
		if b, err = os.ReadFile(filepath.Join(dir, f)); err == nil {
			break
		}
	}
	if err != nil {
		return nil, classify(fmt.Sprintf("reading the affinity of IRQ %d", n), err)
	}
	cpus, err := ParseCPUList(string(b))
	if err != nil {
		return nil, fmt.Errorf("reading the affinity of IRQ %d: %w", n, err)
	}
	return cpus, nil
}

// maxCPUs bounds a CPU list: no kernel supports more CPUs than this.
const maxCPUs = 1 << 16

// ParseCPUList parses a kernel CPU list such as "0-3,8,10-11".
func ParseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty CPU list")
	}
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a || b >= maxCPUs || len(out)+b-a >= maxCPUs {
			return nil, fmt.Errorf("CPU list %q: %q is not a CPU or range", truncate(s, 40), truncate(part, 20))
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}

// lowerDevices returns the devices dev is stacked on, from its sysfs
// lower_NAME links (a bond's slaves, a bridge's ports, a VLAN's parent);
// none when it has none or they cannot be listed.
func (h *Host) lowerDevices(dev string) []string {
	entries, err := os.ReadDir(h.sys("class/net", dev))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if name, ok := strings.CutPrefix(e.Name(), "lower_"); ok && name != "" {
			out = append(out, name)
		}
	}
	return out
}
