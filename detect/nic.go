package detect

// NICs are the devices the node receives its traffic by: the underlays of
// its tunnels and the devices of its default routes, with what decides how
// their receive work can be spread over CPUs.
type NICs struct {
	Devices []NIC `json:"devices,omitempty"`
	Err     Err   `json:"error,omitzero"`
}

// NIC is one receiving device.
type NIC struct {
	Name string `json:"name"`
	// Channels are its queue counts from ethtool -l (ETHTOOL_GCHANNELS),
	// nil when the driver does not say (ChannelsErr says why).
	Channels    *Channels `json:"channels,omitempty"`
	ChannelsErr Err       `json:"channels_error,omitzero"`
	// IRQs are the device's interrupts (its MSI vectors), none for a
	// virtual device.
	IRQs   []IRQ `json:"irqs,omitempty"`
	IRQErr Err   `json:"irq_error,omitzero"`
	// RxQueues are its receive queues and their RPS masks.
	RxQueues []RxQueue `json:"rx_queues,omitempty"`
	// Lower are the devices it is stacked on (a bond's slaves, a bridge's
	// ports, a VLAN's parent), from sysfs lower_* links: its packets
	// arrive, and RPS steers them, on those devices' queues.
	Lower []string `json:"lower,omitempty"`
}

// Channels are a device's queue counts: the maximum the driver allows and
// the current setting, for separate rx and tx queues and for combined ones.
type Channels struct {
	MaxRx       uint32 `json:"max_rx"`
	MaxCombined uint32 `json:"max_combined"`
	Rx          uint32 `json:"rx"`
	Combined    uint32 `json:"combined"`
}

// RxQueues returns how many queues receive now and at most, counting
// combined queues, or rx queues for a driver that has no combined ones.
func (c Channels) RxQueues() (current, most uint32, kind string) {
	if c.MaxCombined > 0 {
		return c.Combined, c.MaxCombined, "combined"
	}
	return c.Rx, c.MaxRx, "rx"
}

// IRQ is one interrupt of a device and the CPUs it may land on.
type IRQ struct {
	Number int `json:"number"`
	// Name is the action name /proc/interrupts shows, such as
	// "virtio0-input.0" or "mlx5_comp3@pci:0000:3b:00.0".
	Name string `json:"name,omitempty"`
	// CPUs are the CPUs it is delivered to: effective_affinity_list where
	// the kernel has it, else smp_affinity_list.
	CPUs []int `json:"cpus"`
}

// ProcIRQBalance is irqbalance's process name. It places (and re-places)
// device interrupts on CPUs by itself; the agents probe looks for it.
const ProcIRQBalance = "irqbalance"
