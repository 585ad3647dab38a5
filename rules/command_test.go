package rules

import "testing"

// TestChangeCommandQuotes: device names come from the kernel, which lets
// them hold shell metacharacters and control characters; the printed
// command quotes every argument, so a person who pastes it (or pipes it
// into sh) runs only the command.
func TestChangeCommandQuotes(t *testing.T) {
	for _, tt := range []struct {
		c    Change
		want string
	}{
		{Change{Kind: ChangeFeature, Target: "x$(id)", Setting: "tx-checksum-ip-generic", Value: "on"}, "ethtool -K 'x$(id)' tx-checksum-ip-generic on"},
		{Change{Kind: ChangeFeature, Target: "v;id", Setting: "tx-checksum-ip-generic", Value: "off"}, "ethtool -K 'v;id' tx-checksum-ip-generic off"},
		{Change{Kind: ChangeFeature, Target: "a'b", Setting: "tx-checksum-ip-generic", Value: "on"}, `ethtool -K 'a'\''b' tx-checksum-ip-generic on`},
		{Change{Kind: ChangeFeature, Target: "\x1b[2Jx", Setting: "tx-checksum-ip-generic", Value: "on"}, `ethtool -K "$(printf '\033\1332Jx')" tx-checksum-ip-generic on`},
		{Change{Kind: ChangeRPS, Target: "e;id/rx-0", Value: "3"}, "echo 3 > '/sys/class/net/e;id/queues/rx-0/rps_cpus'"},
		{Change{Kind: ChangeSysctl, Target: "net.core.netdev_budget", Value: "600"}, "sysctl -w net.core.netdev_budget=600"},
		{Change{Kind: "x", Target: "\x1b"}, `# unknown change x on \x1b`},
	} {
		if got := tt.c.Command(); got != tt.want {
			t.Errorf("Command() = %s, want %s", got, tt.want)
		}
	}
}
