package probes

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCPUList(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []int
		ok   bool
	}{
		{"0\n", []int{0}, true},
		{"0-3,8,10-11", []int{0, 1, 2, 3, 8, 10, 11}, true},
		{"", nil, false},
		{"3-1", nil, false},
		{"a", nil, false},
		{"0-70000", nil, false},
		{"1,,2", nil, false},
	} {
		got, err := ParseCPUList(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseCPUList(%q) error %v, want ok=%v", tt.in, err, tt.ok)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseCPUList(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func FuzzParseCPUList(f *testing.F) {
	for _, s := range []string{"0", "0-3,8", "", "5-", "-1", "0-65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cpus, err := ParseCPUList(s)
		if err != nil && cpus != nil {
			t.Fatalf("error %v with CPUs %v", err, cpus)
		}
		if len(cpus) > maxCPUs {
			t.Fatalf("%d CPUs from %q", len(cpus), s)
		}
		for _, c := range cpus {
			if c < 0 || c >= maxCPUs {
				t.Fatalf("CPU %d from %q", c, s)
			}
		}
	})
}

const interrupts = `           CPU0       CPU1       
  0:         33          0   IO-APIC   2-edge      timer
 24:          0          0   PCI-MSIX-0000:00:03.0   0-edge      virtio0-config
 25:     812345          0   PCI-MSIX-0000:00:03.0   1-edge      virtio0-input.0
 26:          1          0   PCI-MSIX-0000:00:03.0   2-edge      virtio0-output.0
NMI:          0          0   Non-maskable interrupts
ERR:          0
`

func TestParseInterruptNames(t *testing.T) {
	want := map[int]string{0: "timer", 24: "virtio0-config", 25: "virtio0-input.0", 26: "virtio0-output.0"}
	if diff := cmp.Diff(want, ParseInterruptNames(interrupts)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func FuzzParseInterruptNames(f *testing.F) {
	f.Add(interrupts)
	f.Add(" 5: 1 2\n")
	f.Fuzz(func(t *testing.T, text string) {
		for n := range ParseInterruptNames(text) {
			if n < 0 {
				t.Fatalf("IRQ %d", n)
			}
		}
	})
}

// TestLowerDevices: a bond's slaves (a bridge's ports, a VLAN's parent)
// are its sysfs lower_NAME links; a device with none has none.
func TestLowerDevices(t *testing.T) {
	h, dir := procTreeDir(t, map[string]string{
		"class/net/bond0/mtu": "1500\n",
		"class/net/eth1/mtu":  "1500\n",
		"class/net/eth2/mtu":  "1500\n",
	})
	for _, l := range []string{"eth1", "eth2"} {
		if err := os.Symlink("../"+l, filepath.Join(dir, "class/net/bond0/lower_"+l)); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"eth1", "eth2"}, h.lowerDevices("bond0")); diff != "" {
		t.Errorf("bond0 (-want +got):\n%s", diff)
	}
	if got := h.lowerDevices("eth1"); got != nil {
		t.Errorf("eth1 has lower devices %v", got)
	}
}
