package rules

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
)

// busyNode has four CPUs, CPU 0 saturated by softirq, and eth0 as its
// receiving NIC, with RPS off on its queues.
func busyNode(nic detect.NIC) *detect.Snapshot {
	s := node("6.1.0")
	s.CPU.PerCPU = []detect.CPUUsage{{CPU: 0, Softirq: 0.95}, {CPU: 1, Idle: 0.9}, {CPU: 2, Idle: 0.9}, {CPU: 3, Idle: 0.9}}
	nic.Name = "eth0"
	for i := range max(1, len(nic.IRQs)) {
		nic.RxQueues = append(nic.RxQueues, detect.RxQueue{Name: "rx-" + string(rune('0'+i)), RPSCPUs: "0"})
	}
	s.NICs = detect.NICs{Devices: []detect.NIC{nic}}
	return s
}

func irqsOn(cpu int, n int) []detect.IRQ {
	var out []detect.IRQ
	for i := range n {
		out = append(out, detect.IRQ{Number: 24 + i, Name: "eth0-TxRx-" + string(rune('0'+i)), CPUs: []int{cpu}})
	}
	return out
}

// TestSoftirqFixesThatCanBeRun: the fix names the NIC, asks for no more
// queues than ethtool -l allows, looks at the interrupts and irqbalance
// first, and makes RPS automatic only when the hardware cannot spread.
func TestSoftirqFixesThatCanBeRun(t *testing.T) {
	for _, tt := range []struct {
		name    string
		nic     detect.NIC
		procs   []string
		auto    bool
		command string
		manual  string
	}{
		{
			name:    "one queue of eight: more queues, capped at the CPUs, no RPS yet",
			nic:     detect.NIC{Channels: &detect.Channels{MaxCombined: 8, Combined: 1}, IRQs: irqsOn(0, 1)},
			command: "ethtool -L eth0 combined 4",
			manual:  "only if one CPU still saturates",
		},
		{
			name:    "separate rx queues, capped by the driver",
			nic:     detect.NIC{Channels: &detect.Channels{MaxRx: 2, Rx: 1}, IRQs: irqsOn(0, 1)},
			command: "ethtool -L eth0 rx 2",
		},
		{
			name: "four queues all on CPU 0, no irqbalance: spread the interrupts",
			nic:  detect.NIC{Channels: &detect.Channels{MaxCombined: 4, Combined: 4}, IRQs: irqsOn(0, 4)},
			command: "echo 0 > /proc/irq/24/smp_affinity_list\necho 1 > /proc/irq/25/smp_affinity_list\n" +
				"echo 2 > /proc/irq/26/smp_affinity_list\necho 3 > /proc/irq/27/smp_affinity_list",
			manual: "irqbalance does not run",
		},
		{
			name:   "four queues all on CPU 0 placed by irqbalance: its configuration, not a fight",
			nic:    detect.NIC{Channels: &detect.Channels{MaxCombined: 4, Combined: 4}, IRQs: irqsOn(0, 4)},
			procs:  []string{"irqbalance"},
			manual: "IRQBALANCE_BANNED_CPUS",
		},
		{
			name:    "one queue, the driver's maximum: RPS, automatic",
			nic:     detect.NIC{Channels: &detect.Channels{MaxCombined: 1, Combined: 1}, IRQs: irqsOn(0, 1)},
			auto:    true,
			command: "echo f > /sys/class/net/eth0/queues/rx-0/rps_cpus",
		},
		{
			name:    "queue counts unreadable: RPS only by hand",
			nic:     detect.NIC{ChannelsErr: detect.Fail(detect.ErrPermission), IRQs: irqsOn(0, 1)},
			command: "echo f > /sys/class/net/eth0/queues/rx-0/rps_cpus",
			manual:  "queue counts of eth0 are unknown",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := busyNode(tt.nic)
			s.Host.Processes = tt.procs
			r := Evaluate(s, DefaultConfig())
			if diff := cmp.Diff([]string{"softirq-saturated cpu0 warning auto=" + map[bool]string{true: "true", false: "false"}[tt.auto]}, fired(r)); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
			f := r.Findings[0]
			if !strings.Contains(f.Summary, "eth0") {
				t.Errorf("summary %q does not name the NIC", f.Summary)
			}
			if tt.command != "" && f.Fix.Command != tt.command {
				t.Errorf("command %q, want %q", f.Fix.Command, tt.command)
			}
			if tt.command == "" && f.Fix.Command != "" {
				t.Errorf("command %q, want none", f.Fix.Command)
			}
			if !strings.Contains(f.Fix.Manual, tt.manual) {
				t.Errorf("manual %q lacks %q", f.Fix.Manual, tt.manual)
			}
		})
	}
}

// TestSoftirqWithoutNICSaysWhatSettlesIt: when no receiving device is
// known, RPS is not applied blind.
func TestSoftirqWithoutNICSaysWhatSettlesIt(t *testing.T) {
	s := busyNode(detect.NIC{})
	s.NICs = detect.NICs{Err: detect.Fail(errors.New("netlink: boom"))}
	r := Evaluate(s, DefaultConfig())
	if len(r.Findings) != 1 || r.Findings[0].Fix.Auto || !strings.Contains(r.Findings[0].Fix.Manual, "ethtool -l") {
		t.Errorf("got %+v", r.Findings)
	}
}

// TestSoftirqFixQuotesTheNIC: the kernel accepts shell metacharacters in
// a device name; the printed ethtool -L command quotes it.
func TestSoftirqFixQuotesTheNIC(t *testing.T) {
	s := busyNode(detect.NIC{Channels: &detect.Channels{MaxCombined: 8, Combined: 1}, IRQs: irqsOn(0, 1)})
	s.NICs.Devices[0].Name = "v;id"
	r := Evaluate(s, DefaultConfig())
	if len(r.Findings) != 1 {
		t.Fatalf("got %v", fired(r))
	}
	if got, want := r.Findings[0].Fix.Command, "ethtool -L 'v;id' combined 4"; got != want {
		t.Errorf("command %q, want %q", got, want)
	}
}

// TestSoftirqRPSNotAutoOnAnUnrelatedNIC: when none of the NIC's
// interrupts lands on the saturated CPU, nothing says its receive work is
// what saturates that CPU, so RPS on it is not automatic.
func TestSoftirqRPSNotAutoOnAnUnrelatedNIC(t *testing.T) {
	irqs := []detect.IRQ{{Number: 24, CPUs: []int{1}}, {Number: 25, CPUs: []int{2}}, {Number: 26, CPUs: []int{3}}}
	s := busyNode(detect.NIC{Channels: &detect.Channels{MaxCombined: 3, Combined: 3}, IRQs: irqs})
	r := Evaluate(s, DefaultConfig())
	if diff := cmp.Diff([]string{"softirq-saturated cpu0 warning auto=false"}, fired(r)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if m := r.Findings[0].Fix.Manual; !strings.Contains(m, "none of the interrupts of eth0 lands on CPU 0") {
		t.Errorf("manual %q does not say why", m)
	}
}

// TestSoftirqRPSNotAutoOnAStackedDevice: a bond, bridge or VLAN has no
// queues of its own to spread; its packets arrive, and RPS steers them,
// on the devices under it, so RPS on it is not automatic.
func TestSoftirqRPSNotAutoOnAStackedDevice(t *testing.T) {
	s := busyNode(detect.NIC{ChannelsErr: detect.Fail(detect.ErrNotSupported), Lower: []string{"ens1f0", "ens1f1"}})
	r := Evaluate(s, DefaultConfig())
	if diff := cmp.Diff([]string{"softirq-saturated cpu0 warning auto=false"}, fired(r)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if m := r.Findings[0].Fix.Manual; !strings.Contains(m, "eth0 is stacked on ens1f0, ens1f1") {
		t.Errorf("manual %q does not name the devices under it", m)
	}
}
