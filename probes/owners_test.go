package probes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/procfs"

	"github.com/nodetune/nodetune/detect"
)

// flannelDocRule is the rule flannel's troubleshooting guide gives to make
// tx-checksum-ip-generic off persist.
const flannelDocRule = `# flannel's troubleshooting guide
SUBSYSTEM=="net", ACTION=="add|change|move", ENV{INTERFACE}=="flannel.1", \
  RUN+="/usr/sbin/ethtool -K flannel.1 tx-checksum-ip-generic off"
`

func udevFiles(t *testing.T, text string) []detect.OffloadFile {
	t.Helper()
	rules, err := parseUdevRules(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parseUdevRules: %v", err)
	}
	var out []detect.OffloadFile
	for _, r := range rules {
		out = append(out, udevOffloadFiles(r, "/etc/udev/rules.d/x.rules", nil)...)
	}
	return out
}

func TestUdevRules(t *testing.T) {
	off := []detect.FeatureSetting{{Feature: "tx-checksum-ip-generic"}}
	tests := []struct {
		name string
		text string
		want []detect.OffloadFile
	}{
		{
			name: "flannel's documented rule",
			text: flannelDocRule,
			want: []detect.OffloadFile{{Kind: detect.FileUdevRule, Path: "/etc/udev/rules.d/x.rules", Line: 2, LastLine: 3, OnlyAction: true,
				Text:     `SUBSYSTEM=="net", ACTION=="add|change|move", ENV{INTERFACE}=="flannel.1",   RUN+="/usr/sbin/ethtool -K flannel.1 tx-checksum-ip-generic off"`,
				Match:    detect.DeviceMatch{Names: []string{"flannel.1"}, By: "its ethtool command's device flannel.1"},
				Settings: off}},
		},
		{
			name: "the event's device, through sh -c, with another action",
			text: `ACTION=="add", SUBSYSTEM=="net", KERNEL=="flannel*", ATTR{mtu}=="1450", RUN+="/bin/sh -c 'ethtool --offload $name tx off rx on'", ENV{X}="1"` + "\n",
			want: []detect.OffloadFile{{Kind: detect.FileUdevRule, Path: "/etc/udev/rules.d/x.rules", Line: 1, LastLine: 1,
				Text:     `ACTION=="add", SUBSYSTEM=="net", KERNEL=="flannel*", ATTR{mtu}=="1450", RUN+="/bin/sh -c 'ethtool --offload $name tx off rx on'", ENV{X}="1"`,
				Match:    detect.DeviceMatch{Names: []string{"flannel*"}, Unchecked: []string{`ATTR{mtu}=="1450"`}, By: `KERNEL=="flannel*"`},
				Settings: []detect.FeatureSetting{{Feature: "tx"}, {Feature: "rx", On: true}}}},
		},
		{
			name: "removal only, another subsystem",
			text: `ACTION=="remove", SUBSYSTEM=="net", RUN+="/usr/sbin/ethtool -K %k tx off"` + "\n" +
				`SUBSYSTEM=="block", RUN+="/usr/sbin/ethtool -K %k tx off"` + "\n" +
				`SUBSYSTEM!="net", RUN+="/usr/sbin/ethtool -K %k tx off"` + "\n",
			want: []detect.OffloadFile{
				{Kind: detect.FileUdevRule, Path: "/etc/udev/rules.d/x.rules", Line: 1, LastLine: 1, OnlyAction: true,
					Text:  `ACTION=="remove", SUBSYSTEM=="net", RUN+="/usr/sbin/ethtool -K %k tx off"`,
					Match: detect.DeviceMatch{Never: true}, Settings: []detect.FeatureSetting{{Feature: "tx"}}},
				{Kind: detect.FileUdevRule, Path: "/etc/udev/rules.d/x.rules", Line: 2, LastLine: 2, OnlyAction: true,
					Text:  `SUBSYSTEM=="block", RUN+="/usr/sbin/ethtool -K %k tx off"`,
					Match: detect.DeviceMatch{Never: true}, Settings: []detect.FeatureSetting{{Feature: "tx"}}},
				{Kind: detect.FileUdevRule, Path: "/etc/udev/rules.d/x.rules", Line: 3, LastLine: 3, OnlyAction: true,
					Text:  `SUBSYSTEM!="net", RUN+="/usr/sbin/ethtool -K %k tx off"`,
					Match: detect.DeviceMatch{Never: true}, Settings: []detect.FeatureSetting{{Feature: "tx"}}},
			},
		},
		{
			name: "by driver",
			text: `ACTION=="add", ENV{ID_NET_DRIVER}=="vxlan", RUN+="/usr/sbin/ethtool -K $name tx off"` + "\n",
			want: []detect.OffloadFile{{Kind: detect.FileUdevRule, Path: "/etc/udev/rules.d/x.rules", Line: 1, LastLine: 1, OnlyAction: true,
				Text:  `ACTION=="add", ENV{ID_NET_DRIVER}=="vxlan", RUN+="/usr/sbin/ethtool -K $name tx off"`,
				Match: detect.DeviceMatch{Kinds: []string{"vxlan"}, By: `ENV{ID_NET_DRIVER}=="vxlan"`}, Settings: []detect.FeatureSetting{{Feature: "tx"}}}},
		},
		{name: "not ethtool -K", text: `SUBSYSTEM=="net", RUN+="/usr/sbin/ethtool -G %k rx 4096"` + "\n" + `KERNEL=="eth0", RUN+="/usr/sbin/ethtool -K"` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, udevFiles(t, tt.text)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestUdevRulesBadLines(t *testing.T) {
	rules, err := parseUdevRules(strings.NewReader("KERNEL==flannel.1\n" + `KERNEL=="x", RUN+="unclosed` + "\n" + flannelDocRule + "KERNEL=\"x\" \\"))
	if err == nil || !strings.Contains(err.Error(), "line 1") || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "backslash") {
		t.Errorf("error = %v", err)
	}
	if len(rules) != 1 || rules[0].Line != 4 {
		t.Errorf("the good rule was not kept: %+v", rules)
	}
}

func TestLinkFile(t *testing.T) {
	tests := []struct {
		name string
		text string
		want detect.OffloadFile
	}{
		{
			name: "TransmitChecksumOffload=false for flannel.1",
			text: "# keep it off\n[Match]\nOriginalName=flannel.1\n\n[Link]\nMACAddressPolicy=none\nTransmitChecksumOffload=false\nGenericSegmentationOffload=yes\n",
			want: detect.OffloadFile{Kind: detect.FileLinkFile, Path: "/etc/systemd/network/10-flannel.link", Line: 7, Text: "TransmitChecksumOffload=false",
				OnlyAction: true, Match: detect.DeviceMatch{Names: []string{"flannel.1"}, By: "OriginalName=flannel.1"},
				Settings: []detect.FeatureSetting{{Feature: "TransmitChecksumOffload"}, {Feature: "GenericSegmentationOffload", On: true}}},
		},
		{
			name: "continuation, negation, kind and host conditions, a value systemd ignores",
			text: "[Match]\nOriginalName=flannel* \\\n  !flannel-v6*\nKind=vxlan\nHost=node1\n[Link]\nTransmitChecksumOffload=maybe\nTCPSegmentationOffload=0\n",
			want: detect.OffloadFile{Kind: detect.FileLinkFile, Path: "/etc/systemd/network/10-flannel.link", Line: 8, Text: "TCPSegmentationOffload=0",
				OnlyAction: true, Match: detect.DeviceMatch{Names: []string{"flannel*"}, NotNames: []string{"flannel-v6*"}, Kinds: []string{"vxlan"},
					Unchecked: []string{"Host=node1"}, By: "OriginalName=flannel*    !flannel-v6*, Kind=vxlan"},
				Settings: []detect.FeatureSetting{{Feature: "TCPSegmentationOffload"}}},
		},
		{
			// systemd.link(5): a "!" before the list inverts every pattern
			// in it, for Kind= and Driver= as for OriginalName=.
			name: "a list inverted by its leading !, for names and kinds",
			text: "[Match]\nOriginalName=!flannel* cni0\nKind=!vxlan\n[Link]\nTransmitChecksumOffload=false\n",
			want: detect.OffloadFile{Kind: detect.FileLinkFile, Path: "/etc/systemd/network/10-flannel.link", Line: 5, Text: "TransmitChecksumOffload=false",
				OnlyAction: true, Match: detect.DeviceMatch{NotNames: []string{"flannel*", "cni0"}, NotKinds: []string{"vxlan"},
					By: "OriginalName=!flannel* cni0, Kind=!vxlan"},
				Settings: []detect.FeatureSetting{{Feature: "TransmitChecksumOffload"}}},
		},
		{
			name: "an empty [Match] is ignored by systemd",
			text: "[Match]\n[Link]\nTransmitChecksumOffload=false\n",
			want: detect.OffloadFile{Kind: detect.FileLinkFile, Path: "/etc/systemd/network/10-flannel.link", Line: 3, Text: "TransmitChecksumOffload=false",
				OnlyAction: true, Match: detect.DeviceMatch{Never: true}, Settings: []detect.FeatureSetting{{Feature: "TransmitChecksumOffload"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lf, err := parseLinkFile(strings.NewReader(tt.text))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, linkOffloadFile(lf, "/etc/systemd/network/10-flannel.link")); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"[Match\n", "[Match]\nOriginalName\n"} {
		if _, err := parseLinkFile(strings.NewReader(bad)); err == nil {
			t.Errorf("parseLinkFile(%q) did not fail", bad)
		}
	}
}

func TestDispatcherScript(t *testing.T) {
	tests := []struct {
		name, text string
		want       []detect.DeviceMatch
	}{
		{
			name: "guarded by case",
			text: "#!/bin/sh\nIFACE=\"$1\"\ncase \"$IFACE\" in\nflannel.1|cni0)\n\t/usr/sbin/ethtool -K \"$IFACE\" \\\n\t\ttx off\n\t;;\nesac\n",
			want: []detect.DeviceMatch{{Names: []string{"flannel.1", "cni0"}, By: "the names the script compares $IFACE with"}},
		},
		{
			name: "guarded by test, and a literal device through a variable",
			text: "#!/bin/bash\nDEV=flannel.1\n[ \"$DEVICE_IFACE\" != \"eth0\" ] && exit 0\nethtool -K $DEV tx-checksum-ip-generic off\nif [[ $1 == ens* ]]; then ethtool --features \"$1\" tx off; fi\n",
			want: []detect.DeviceMatch{
				{Names: []string{"flannel.1"}, By: "its ethtool command's device flannel.1"},
				{Names: []string{"ens*"}, By: "the names the script compares $1 with"},
			},
		},
		{
			name: "guarded by [ = ] && and by if [ = ]",
			text: "#!/bin/sh\n[ \"$1\" = flannel.1 ] && ethtool -K \"$1\" tx off\nif [ \"$1\" = cni0 ]; then\n  ethtool -K \"$1\" tx off\nfi\n",
			want: []detect.DeviceMatch{
				{Names: []string{"flannel.1"}, By: "the names the script compares $1 with"},
				{Names: []string{"cni0"}, By: "the names the script compares $1 with"},
			},
		},
		{
			// The comparison skips eth0 and the call runs for every other
			// interface: the compared name is not where it applies.
			name: "a comparison that skips a name, the call outside it",
			text: "#!/bin/sh\n[ \"$1\" = eth0 ] && exit 0\nethtool -K \"$1\" tx off\n",
			want: []detect.DeviceMatch{{Unchecked: []string{"the device $1 is whichever interface NetworkManager calls the script for " +
				"(the script compares it with eth0, but not around this call)"}}},
		},
		{
			name: "unguarded",
			text: "#!/bin/sh\nethtool -K \"$1\" tx off\n",
			want: []detect.DeviceMatch{{Unchecked: []string{"the device $1 is whichever interface NetworkManager calls the script for"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := parseDispatcherScript(strings.NewReader(tt.text), "/etc/NetworkManager/dispatcher.d/x")
			if err != nil {
				t.Fatal(err)
			}
			var got []detect.DeviceMatch
			for _, f := range files {
				got = append(got, f.Match)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := parseDispatcherScript(strings.NewReader("if then fi ((\n"), "x"); err == nil {
		t.Error("a script that does not parse gave no error")
	}
}

func writeFile(t *testing.T, root, p, text string, mode os.FileMode) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}

// TestOffloadFilesPrecedence: /etc overrides /usr/lib by name, a link to
// /dev/null or an empty file masks, a dispatcher script must be
// executable, and files come in lexical order across directories.
func TestOffloadFilesPrecedence(t *testing.T) {
	root := t.TempDir()
	rule := func(dev string) string {
		return `SUBSYSTEM=="net", RUN+="/usr/sbin/ethtool -K ` + dev + ` tx off"` + "\n"
	}
	writeFile(t, root, "/usr/lib/udev/rules.d/90-a.rules", rule("vendor"), 0o644)
	writeFile(t, root, "/etc/udev/rules.d/90-a.rules", rule("admin"), 0o644)
	writeFile(t, root, "/usr/lib/udev/rules.d/50-b.rules", rule("first"), 0o644)
	writeFile(t, root, "/usr/lib/udev/rules.d/60-masked.rules", rule("masked"), 0o644)
	if err := os.Symlink("/dev/null", filepath.Join(root, "/etc/udev/rules.d/60-masked.rules")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "/usr/lib/udev/rules.d/70-empty.rules", rule("emptied"), 0o644)
	writeFile(t, root, "/run/udev/rules.d/70-empty.rules", "", 0o644)
	writeFile(t, root, "/etc/udev/rules.d/README", rule("notarule"), 0o644)
	writeFile(t, root, "/etc/NetworkManager/dispatcher.d/10-off", "#!/bin/sh\nethtool -K noexec tx off\n", 0o644)
	writeFile(t, root, "/etc/NetworkManager/dispatcher.d/20-on", "#!/bin/sh\nethtool -K exec tx off\n", 0o755)
	writeFile(t, root, "/etc/NetworkManager/dispatcher.d/30-big", strings.Repeat("#", maxOwnerFileBytes+1), 0o755)
	h := &Host{Paths: Paths{RootFS: root}}
	files, err := h.OffloadFiles()
	if err == nil || !strings.Contains(err.Error(), "30-big") {
		t.Errorf("error = %v, want one about the oversized file", err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Path+" "+strings.Join(f.Match.Names, ","))
	}
	want := []string{
		"/usr/lib/udev/rules.d/50-b.rules first",
		"/etc/udev/rules.d/90-a.rules admin",
		"/etc/NetworkManager/dispatcher.d/20-on exec",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestOwnershipCalicoAndNodeName(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "/etc/hostname", "Worker-9.example.com\n", 0o644)
	h := &Host{Paths: Paths{RootFS: root}, NodeName: "from-env"}
	h.proc = mustProcFS(t, t.TempDir())
	o := h.Ownership()
	if o.NodeName != "from-env" || o.NodeNameSource != "$NODE_NAME" || len(o.Calico.Signs) != 0 || !o.Calico.EnvErr.Failed() {
		t.Errorf("ownership = %+v", o)
	}
	h.NodeName = ""
	if o = h.Ownership(); o.NodeName != "worker-9.example.com" {
		t.Errorf("node name from /etc/hostname = %q", o.NodeName)
	}
	writeFile(t, root, "/var/lib/calico/nodename", "worker-9\n", 0o644)
	writeFile(t, root, "/etc/cni/net.d/10-calico.conflist", `{"plugins":[{"type":"calico","nodename":"worker-9"}]}`, 0o644)
	writeFile(t, root, "/var/log/pods/calico-system_calico-node-abcde_1234/calico-node/0.log", "", 0o644)
	o = h.Ownership()
	install, ev := o.Calico.Install()
	if o.NodeName != "worker-9" || o.NodeNameSource != "Calico's /var/lib/calico/nodename" || install != "" || len(ev) != 2 || o.Calico.Namespace != "calico-system" {
		t.Errorf("ownership = %+v, install %q %v", o, install, ev)
	}
}

func FuzzParseUdevRules(f *testing.F) {
	for _, s := range []string{flannelDocRule, `KERNEL=="x", RUN+="/bin/sh -c 'ethtool -K $name tx off'"`, "A==\"\\\"\"\n", "\\\n\\", "X{", `E=e"x"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rules, _ := parseUdevRules(strings.NewReader(s))
		for _, r := range rules {
			for _, o := range udevOffloadFiles(r, "/x.rules", nil) {
				if len(o.Settings) == 0 || o.Line < 1 || o.LastLine < o.Line {
					t.Fatalf("bad file %+v", o)
				}
			}
		}
	})
}

func FuzzParseLinkFile(f *testing.F) {
	for _, s := range []string{"[Match]\nOriginalName=flannel.1\n[Link]\nTransmitChecksumOffload=false\n", "[Match]\\\n", "[\n", "=\n", ";c\n[Link]\nTCPSegmentationOffload=on\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lf, err := parseLinkFile(strings.NewReader(s))
		if err != nil {
			return
		}
		o := linkOffloadFile(lf, "/x.link")
		if len(o.Settings) > 0 && o.Line < 1 {
			t.Fatalf("bad file %+v", o)
		}
	})
}

func FuzzParseDispatcherScript(f *testing.F) {
	for _, s := range []string{"#!/bin/sh\ncase $1 in flannel.1) ethtool -K $1 tx off;; esac\n", "[ \"$1\" = x ] && ethtool -K x tx on", "ethtool -K", "$(", "f() { ethtool --offload \"${1}\" tx off; }"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		files, err := parseDispatcherScript(strings.NewReader(s), "x")
		if err != nil {
			return
		}
		for _, o := range files {
			if len(o.Settings) == 0 || o.Line < 1 {
				t.Fatalf("bad file %+v", o)
			}
		}
	})
}

func FuzzCalicoPluginConfig(f *testing.F) {
	for _, s := range []string{`{"plugins":[{"type":"calico","nodename":"n"}]}`, `{"type":"calico"}`, `{"plugins":[1]}`, "", "null"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := calicoPluginConfig([]byte(s))
		if err == nil && p == nil {
			t.Fatalf("no error and no config for %q", s)
		}
	})
}

func mustProcFS(t *testing.T, dir string) procfs.FS {
	t.Helper()
	fs, err := procfs.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestOffloadFilesBadUdevLines: a line udev would skip matters only when
// it may have been meant to run ethtool; then the owner is unknown.
func TestOffloadFilesBadUdevLines(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "/etc/udev/rules.d/10-other.rules", "KERNEL==sda, NAME=\"x\"\n"+flannelDocRule, 0o644)
	h := &Host{Paths: Paths{RootFS: root}}
	files, err := h.OffloadFiles()
	if err != nil || len(files) != 1 {
		t.Fatalf("files %+v, error %v", files, err)
	}
	writeFile(t, root, "/etc/udev/rules.d/20-broken.rules", `KERNEL=="flannel.1", RUN+="/usr/sbin/ethtool -K flannel.1 tx off`+"\n", 0o644)
	if _, err := h.OffloadFiles(); err == nil || !strings.Contains(err.Error(), "20-broken.rules") || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("error = %v, want one naming 20-broken.rules line 1", err)
	}
}

// TestOffloadFilesUnitsAndScripts: a systemd unit that runs ethtool at
// start is an owner (the RKE2 playbooks' udp-checksum-offload-disable
// unit), and so is a script a unit or udev rule runs, with its arguments
// standing in for "$1".
func TestOffloadFilesUnitsAndScripts(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "/etc/systemd/system/udp-checksum-offload-disable.service",
		"; maintained by Ansible\n[Unit]\nDescription=Disable udp checksum offload\n[Service]\nType=oneshot\nRemainAfterExit=true\n"+
			"ExecStart=ethtool --offload  eth0  rx off  tx off\n[Install]\nWantedBy=rancher-system-agent.service\n", 0o644)
	if err := os.MkdirAll(filepath.Join(root, "/etc/systemd/system/rancher-system-agent.service.wants"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/systemd/system/udp-checksum-offload-disable.service",
		filepath.Join(root, "/etc/systemd/system/rancher-system-agent.service.wants/udp-checksum-offload-disable.service")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "/usr/local/bin/flannel-offload.sh", "#!/bin/bash\nwhile ! ip link show \"$1\"; do sleep 1; done\n/usr/sbin/ethtool -K \"$1\" tx-checksum-ip-generic off\n", 0o755)
	writeFile(t, root, "/etc/systemd/system/flannel-offload.service", "[Service]\nExecStartPre=-/bin/true\nExecStart=/usr/local/bin/flannel-offload.sh flannel.1\n", 0o644)
	writeFile(t, root, "/etc/udev/rules.d/90-flannel.rules", `SUBSYSTEM=="net", KERNEL=="flannel.*", RUN+="/bin/sh /usr/local/bin/flannel-offload.sh %k"`+"\n", 0o644)
	h := &Host{Paths: Paths{RootFS: root}}
	files, err := h.OffloadFiles()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, fmt.Sprintf("%s:%d %s names=%v unchecked=%v only=%v", f.Path, f.Line, f.Text, f.Match.Names, f.Match.Unchecked, f.OnlyAction))
	}
	want := []string{
		"/etc/udev/rules.d/90-flannel.rules:1 " + `SUBSYSTEM=="net", KERNEL=="flannel.*", RUN+="/bin/sh /usr/local/bin/flannel-offload.sh %k"` +
			` (/usr/local/bin/flannel-offload.sh line 3: /usr/sbin/ethtool -K $1 tx-checksum-ip-generic off) names=[flannel.*] unchecked=[] only=true`,
		"/etc/systemd/system/flannel-offload.service:3 ExecStart=/usr/local/bin/flannel-offload.sh flannel.1" +
			" (/usr/local/bin/flannel-offload.sh line 3: /usr/sbin/ethtool -K $1 tx-checksum-ip-generic off) names=[flannel.1]" +
			" unchecked=[the unit is not enabled, so it runs only when something starts it] only=false",
		"/etc/systemd/system/udp-checksum-offload-disable.service:7 ExecStart=ethtool --offload eth0 rx off tx off names=[eth0] unchecked=[] only=true",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func FuzzParseUnitFile(f *testing.F) {
	for _, s := range []string{"[Service]\nExecStart=ethtool --offload eth0 tx off\n", "[Service]\nExecStart=-/bin/sh -c 'ethtool -K x tx off'\n", "[Service\n", "[Service]\nExecStart=\\\n", "[Service]\nExecStartPost=@'\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		execs, err := parseUnitFile(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, o := range unitOffloadFiles(execs, "/x.service", true, nil) {
			if len(o.Settings) == 0 || o.Line < 1 {
				t.Fatalf("bad file %+v", o)
			}
		}
	})
}
