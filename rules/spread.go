package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/shell"
)

// receivingNIC picks the device whose receive work lands on cpu: one with
// an interrupt delivered to cpu (byIRQ), else the first the probe found
// (tunnel underlays come first), which is a guess.
func receivingNIC(s *detect.Snapshot, cpu int) (nic *detect.NIC, byIRQ bool) {
	devs := s.NICs.Devices
	for i := range devs {
		for _, irq := range devs[i].IRQs {
			if slices.Contains(irq.CPUs, cpu) {
				return &devs[i], true
			}
		}
	}
	if len(devs) > 0 {
		return &devs[0], false
	}
	return nil, false
}

// pinnedTo reports whether every IRQ of nic is delivered to one and the
// same CPU, and which.
func pinnedTo(nic *detect.NIC) (int, bool) {
	if len(nic.IRQs) < 2 {
		return 0, false
	}
	first := nic.IRQs[0].CPUs
	if len(first) != 1 {
		return 0, false
	}
	for _, irq := range nic.IRQs[1:] {
		if !slices.Equal(irq.CPUs, first) {
			return 0, false
		}
	}
	return first[0], true
}

// spreadFix fills f's fix for one CPU saturated by softirq. In the order
// a person should try them: more hardware queues, up to what ethtool -l
// allows; the device's interrupts spread over CPUs, unless irqbalance owns
// them; and only when the hardware cannot spread the work further, RPS.
// RPS is automatic only when that is established for the named device:
// its queues are at their maximum (or it is a virtual device with one
// queue), its interrupts are not all on one CPU, and it was picked because
// one of them lands on the saturated CPU (or it has none, being virtual).
func spreadFix(f *Finding, s *detect.Snapshot, busy int, cpus []int) {
	mask := CPUMask(cpus)
	nic, byIRQ := receivingNIC(s, busy)
	if nic == nil {
		reason := "the probe found no device with a default route or under a tunnel"
		if s.NICs.Err.Failed() {
			reason = s.NICs.Err.Error()
		}
		f.Fix.Command = "ethtool -l DEV"
		f.Fix.Manual = "nodetune could not tell which device receives (" + reason + "); what would settle it: the receiving NIC's " +
			"queue counts (ethtool -l), its interrupts' CPUs (/proc/irq/N/smp_affinity_list) and whether irqbalance runs; " +
			"set RPS (echo " + mask + " > /sys/class/net/DEV/queues/rx-N/rps_cpus) only once those cannot spread the work"
		return
	}
	f.Summary += "; the receiving NIC is " + nic.Name
	f.Evidence = append(f.Evidence, Evidence{"nic", nic.Name})
	var cmds, notes []string
	hardwareCanSpread := false
	known := true
	if !byIRQ && len(nic.IRQs) > 0 {
		// Its interrupts go elsewhere: what saturates the CPU may be
		// another device, or work steered there; RPS on this one is a guess.
		known = false
		notes = append(notes, fmt.Sprintf("none of the interrupts of %s lands on CPU %d, so its receive work may not be what "+
			"saturates that CPU; what would settle it: which device's packets CPU %d processes (/proc/interrupts, the rps_cpus "+
			"of every device)", nic.Name, busy, busy))
	}

	switch {
	case nic.Channels != nil:
		cur, most, kind := nic.Channels.RxQueues()
		f.Evidence = append(f.Evidence, Evidence{"rx_queues", fmt.Sprintf("%d of %d allowed (%s)", cur, most, kind)})
		if want := min(most, uint32(len(cpus))); cur < want {
			hardwareCanSpread = true
			cmds = append(cmds, shell.Join("ethtool", "-L", nic.Name, kind, fmt.Sprint(want)))
			notes = append(notes, fmt.Sprintf("%s receives on %d %s queue(s) and its driver allows %d: give it %d, one per CPU up to that; "+
				"the device resets its rings while it changes, so do it in a quiet moment", nic.Name, cur, kind, most, want))
		}
	case errors.Is(nic.ChannelsErr, detect.ErrNotSupported) && len(nic.IRQs) == 0 && !nic.IRQErr.Failed() && len(nic.Lower) > 0:
		// A bond, bridge or VLAN: packets arrive on the devices under it,
		// whose receive work (and RPS: get_rps_cpu runs for the device a
		// packet arrives on; a bond or VLAN hands it up in the same pass,
		// with no RPS of its own) comes before it.
		known = false
		notes = append(notes, fmt.Sprintf("%s is stacked on %s (a bond, bridge or VLAN): its packets arrive on the queues of the "+
			"devices under it, whose interrupts and RPS decide where the receive work runs (RPS on a bond or VLAN itself does "+
			"nothing), so look at those (ethtool -l, their interrupts, their rps_cpus)",
			nic.Name, strings.Join(nic.Lower, ", ")))
	case errors.Is(nic.ChannelsErr, detect.ErrNotSupported) && len(nic.IRQs) == 0 && !nic.IRQErr.Failed():
		// A virtual device (veth, a tunnel): one queue, no interrupts.
		f.Evidence = append(f.Evidence, Evidence{"rx_queues", fmt.Sprintf("%d (a virtual device: ethtool -l not supported)", len(nic.RxQueues))})
	default:
		known = false
		notes = append(notes, fmt.Sprintf("the queue counts of %s are unknown (%s)", nic.Name, nic.ChannelsErr.Error()))
	}

	if nic.IRQErr.Failed() {
		known = false
		notes = append(notes, fmt.Sprintf("the interrupts of %s are unknown (%s)", nic.Name, nic.IRQErr.Error()))
	} else if cpu, pinned := pinnedTo(nic); pinned {
		f.Evidence = append(f.Evidence, Evidence{"irqs_on_cpu", fmt.Sprintf("all %d on cpu%d", len(nic.IRQs), cpu)})
		running, procErr := slices.Contains(s.Host.Processes, detect.ProcIRQBalance), s.Host.ProcErr.Failed()
		switch {
		case running:
			f.Evidence = append(f.Evidence, Evidence{"irqbalance", "running"})
			notes = append(notes, fmt.Sprintf("irqbalance runs and put every interrupt of %s on CPU %d: change its configuration "+
				"(IRQBALANCE_BANNED_CPUS, its hint policy) rather than writing smp_affinity_list, which it would undo", nic.Name, cpu))
			hardwareCanSpread = true
		case procErr:
			known = false
			notes = append(notes, "every interrupt of "+nic.Name+" is on one CPU, and whether irqbalance runs is unknown ("+s.Host.ProcErr.Error()+")")
		default:
			f.Evidence = append(f.Evidence, Evidence{"irqbalance", "not running"})
			hardwareCanSpread = true
			for i, irq := range nic.IRQs {
				cmds = append(cmds, fmt.Sprintf("echo %d > /proc/irq/%d/smp_affinity_list", cpus[i%len(cpus)], irq.Number))
			}
			notes = append(notes, fmt.Sprintf("every interrupt of %s lands on CPU %d and irqbalance does not run: spread them, one CPU each "+
				"(not lasting across reboots: make it so with irqbalance or the distribution's tuning)", nic.Name, cpu))
		}
	}

	var rps []Change
	for _, q := range nic.RxQueues {
		if rpsOff(q.RPSCPUs) {
			rps = append(rps, Change{Kind: ChangeRPS, Target: nic.Name + "/" + q.Name, Value: mask})
		}
	}
	switch {
	case !hardwareCanSpread && known && len(rps) > 0:
		f.Fix = Fix{Command: commands(rps), Auto: true, Changes: rps}
		return
	case len(rps) > 0 && hardwareCanSpread:
		notes = append(notes, fmt.Sprintf("only if one CPU still saturates after that, set RPS on %s's queues (echo %s > /sys/class/net/%s/queues/rx-N/rps_cpus)", nic.Name, mask, nic.Name))
	case len(rps) > 0:
		cmds = append(cmds, commands(rps))
		notes = append(notes, "RPS is the remaining lever, but not applied automatically until the above is known")
	case len(cmds) == 0:
		notes = append(notes, fmt.Sprintf("%s's queues are at their maximum and RPS is already set: the receive work itself is more than one CPU can do", nic.Name))
	}
	f.Fix.Command = strings.Join(cmds, "\n")
	f.Fix.Manual = strings.Join(notes, "; ")
}
