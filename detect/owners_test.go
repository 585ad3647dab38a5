package detect

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func flannelSnapshot(files []OffloadFile, filesErr error) *Snapshot {
	return &Snapshot{
		Tunnels:   Tunnels{Devices: []Tunnel{{Name: "flannel.1", Kind: KindVXLAN}}},
		CNI:       CNI{Name: CNIFlannel},
		Ownership: Ownership{OffloadFiles: files, FilesErr: Fail(filesErr)},
	}
}

var txOff = []FeatureSetting{{Feature: "TransmitChecksumOffload", On: false}}

func TestOffloadOwnersFromFiles(t *testing.T) {
	flannelLink := OffloadFile{Kind: FileLinkFile, Path: "/etc/systemd/network/50-flannel.link", Line: 5, Text: "TransmitChecksumOffload=false",
		Match: DeviceMatch{Names: []string{"flannel.1"}}, Settings: txOff, OnlyAction: true}
	tests := []struct {
		name  string
		files []OffloadFile
		err   error
		want  []string // owner name and file
	}{
		{name: "none"},
		{name: "a .link for flannel.1", files: []OffloadFile{flannelLink}, want: []string{"systemd-link-file /etc/systemd/network/50-flannel.link"}},
		{
			name: "an earlier .link that surely matches hides it",
			files: []OffloadFile{
				{Kind: FileLinkFile, Path: "/etc/systemd/network/10-all.link", Match: DeviceMatch{Names: []string{"*"}}},
				flannelLink,
			},
		},
		{
			name: "an earlier .link that may match does not hide it",
			files: []OffloadFile{
				{Kind: FileLinkFile, Path: "/etc/systemd/network/10-mac.link", Match: DeviceMatch{Unchecked: []string{"MACAddress=x"}}},
				flannelLink,
			},
			want: []string{"systemd-link-file /etc/systemd/network/50-flannel.link"},
		},
		{
			name: "an ignored .link hides nothing",
			files: []OffloadFile{
				{Kind: FileLinkFile, Path: "/etc/systemd/network/10-empty.link", Match: DeviceMatch{Never: true}},
				flannelLink,
			},
			want: []string{"systemd-link-file /etc/systemd/network/50-flannel.link"},
		},
		{
			name: "a .link for every kind but vxlan is not an owner, and hides nothing",
			files: []OffloadFile{
				{Kind: FileLinkFile, Path: "/etc/systemd/network/10-notvxlan.link", Match: DeviceMatch{NotKinds: []string{"vxlan"}}, Settings: txOff},
				flannelLink,
			},
			want: []string{"systemd-link-file /etc/systemd/network/50-flannel.link"},
		},
		{
			name: "a rule for another device is not an owner",
			files: []OffloadFile{{Kind: FileUdevRule, Path: "/etc/udev/rules.d/70-nic.rules", Line: 1,
				Match: DeviceMatch{Names: []string{"eth*|en*"}}, Settings: []FeatureSetting{{"tx", false}}}},
		},
		{
			name: "a .link for another kind is not an owner",
			files: []OffloadFile{{Kind: FileLinkFile, Path: "/etc/systemd/network/10-geneve.link", Line: 3,
				Match: DeviceMatch{Kinds: []string{"geneve"}}, Settings: txOff}},
		},
		{
			name: "a rule that only sets tso is not an owner of tx checksum",
			files: []OffloadFile{{Kind: FileUdevRule, Path: "/etc/udev/rules.d/90.rules", Line: 1,
				Match: DeviceMatch{Names: []string{"flannel*"}}, Settings: []FeatureSetting{{"tso", false}}}},
		},
		{
			name: "a udev rule with a glob and a dispatcher script for any device",
			files: []OffloadFile{
				{Kind: FileUdevRule, Path: "/etc/udev/rules.d/90.rules", Line: 1, Match: DeviceMatch{Names: []string{"cni0|flannel*"}}, Settings: []FeatureSetting{{"tx", false}}},
				{Kind: FileNMDispatcher, Path: "/etc/NetworkManager/dispatcher.d/10-x", Line: 3, Match: DeviceMatch{Unchecked: []string{"any device"}}, Settings: []FeatureSetting{{"tx-checksum-ip-generic", false}}},
			},
			want: []string{"udev-rule /etc/udev/rules.d/90.rules", "networkmanager-dispatcher /etc/NetworkManager/dispatcher.d/10-x"},
		},
		{name: "unreadable places", err: errors.New("listing /etc/udev/rules.d: permission denied"), want: []string{"unknown "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, o := range OffloadOwners(flannelSnapshot(tt.files, tt.err), "flannel.1") {
				got = append(got, o.Name+" "+o.File)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("owners (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFileOwnerFix(t *testing.T) {
	rule := OffloadFile{Kind: FileUdevRule, Path: "/etc/udev/rules.d/90-flannel.rules", Line: 2, LastLine: 3, OnlyAction: true,
		Text:  `SUBSYSTEM=="net", ENV{INTERFACE}=="flannel.1", RUN+="/usr/sbin/ethtool -K flannel.1 tx-checksum-ip-generic off"`,
		Match: DeviceMatch{Names: []string{"flannel.1"}}, Settings: []FeatureSetting{{"tx-checksum-ip-generic", false}}}
	o := OffloadOwner(flannelSnapshot([]OffloadFile{rule}, nil), "flannel.1")
	if o == nil || o.Command != "sed -i '2,3d' /etc/udev/rules.d/90-flannel.rules && udevadm control --reload" || o.Line != 2 {
		t.Fatalf("owner = %+v", o)
	}
	rule.OnlyAction = false
	o = OffloadOwner(flannelSnapshot([]OffloadFile{rule}, nil), "flannel.1")
	if o.Command != "" || !strings.Contains(o.DurableFix, "drop `tx-checksum-ip-generic off`") {
		t.Errorf("a rule that does more gets %+v", o)
	}
	link := OffloadFile{Kind: FileLinkFile, Path: "/run/systemd/network/10-netplan-flannel.1.link", Line: 6, OnlyAction: true, Text: "TransmitChecksumOffload=false",
		Match: DeviceMatch{Names: []string{"flannel.1"}}, Settings: txOff}
	o = OffloadOwner(flannelSnapshot([]OffloadFile{link}, nil), "flannel.1")
	if o.Command != "" || !strings.Contains(o.DurableFix, "generated at boot") || !strings.Contains(o.DurableFix, "/etc/netplan/*.yaml") {
		t.Errorf("a netplan-generated .link gets %+v", o)
	}
	rule.Path, rule.OnlyAction = "/usr/lib/udev/rules.d/90-flannel.rules", true
	o = OffloadOwner(flannelSnapshot([]OffloadFile{rule}, nil), "flannel.1")
	if o.Command != "" || !strings.Contains(o.DurableFix, "copy it to /etc/udev/rules.d") {
		t.Errorf("a packaged rule gets %+v", o)
	}
}

func TestOffloadOwnerMergesOwners(t *testing.T) {
	s := flannelSnapshot([]OffloadFile{{Kind: FileUdevRule, Path: "/etc/udev/rules.d/9.rules", Line: 1,
		Match: DeviceMatch{Names: []string{"vxlan.calico"}}, Settings: []FeatureSetting{{"tx", false}}}}, nil)
	s.Tunnels.Devices[0].Name = "vxlan.calico"
	s.CNI = CNI{Name: CNICalico, FelixRunning: true}
	o := OffloadOwner(s, "vxlan.calico")
	if o == nil || o.Name != OwnerFelix || len(o.Also) != 1 || !strings.Contains(o.DurableFix, "/etc/udev/rules.d/9.rules") {
		t.Errorf("owner = %+v", o)
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tt := range []struct {
		p, s string
		want bool
	}{{"flannel*", "flannel.1", true}, {"eth*|flannel.1", "flannel.1", true}, {"eth*", "flannel.1", false}, {"[", "x", false}, {"flannel.?", "flannel.1", true}} {
		if got := globMatch(tt.p, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v", tt.p, tt.s, got)
		}
	}
}

// TestGlobNegatedClass: udev and systemd match names with fnmatch(3),
// whose bracket expressions are negated by '!' as well as '^'.
func TestGlobNegatedClass(t *testing.T) {
	for _, tt := range []struct {
		pattern, name string
		want          bool
	}{
		{"[!e]*", "flannel.1", true},
		{"[!e]*", "eth0", false},
		{"[^e]*", "flannel.1", true},
		{"flannel[!-]*", "flannel.1", true},
		{"[!]", "x", false},
		{"[]x]", "]", true},
		{"eth[0-9]", "eth3", true},
		{`\[x`, "[x", true},
	} {
		if got := globMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func FuzzGlobMatch(f *testing.F) {
	for _, s := range []string{"[!e]*", "[]x]", "flannel[!-]*", "a|b", `\[`, "[", "[!", "[-]"} {
		f.Add(s, "flannel.1")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		GlobMatch(pattern, name) // must not panic
		if GlobMatch(pattern, name) != GlobMatch(pattern, name) {
			t.Fatal("not deterministic")
		}
	})
}
