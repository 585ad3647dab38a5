package testbed

import (
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		prefix, name string
		pid          int
		ok           bool
	}{
		{"ntb", "ntb-1234-1-a", 1234, true},
		{"ntb", "ntb-1234-17-b", 1234, true},
		{"ntb-bench", "ntb-bench-99-3-a", 99, true},
		{"ntb", "ntb-bench-99-3-a", 0, false}, // another prefix
		{"ntb", "ntbx-1234-1-a", 0, false},
		{"ntb", "ntb-1234", 0, false},  // no sequence part
		{"ntb", "ntb-1234-", 0, false}, // empty sequence part
		{"ntb", "ntb--1-a", 0, false},
		{"ntb", "ntb-+5-1-a", 0, false},
		{"ntb", "ntb-0-1-a", 0, false},
		{"ntb", "cni-1234-1-a", 0, false},
		{"ntb", "", 0, false},
	} {
		pid, ok := parseName(tc.prefix, tc.name)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("parseName(%q, %q) = %d, %t; want %d, %t", tc.prefix, tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	for _, tc := range []struct {
		in          Options
		name        string
		mtu, port   int
		wantErrText string
	}{
		{in: Options{}, name: "vxlan0", mtu: 1450, port: 4789},
		{in: Options{Kind: "geneve"}, name: "gnv0", mtu: 1450, port: 6081},
		{in: Options{Kind: "ipip", UnderlayMTU: 9001}, name: "ipip0", mtu: 8981, port: 4789},
		{in: Options{TunnelName: "flannel.1", Port: 8472, TunnelMTU: 1400}, name: "flannel.1", mtu: 1400, port: 8472},
		{in: Options{Kind: "gre"}, wantErrText: "want vxlan, geneve or ipip"},
		{in: Options{TunnelName: "a-name-far-too-long"}, wantErrText: "not a usable device name"},
		{in: Options{TunnelName: UnderlayName}, wantErrText: "not a usable device name"},
		{in: Options{UnderlayMTU: 500}, wantErrText: "too small"},
	} {
		got, err := tc.in.withDefaults()
		if tc.wantErrText != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrText) {
				t.Errorf("%+v: error %v, want one saying %q", tc.in, err, tc.wantErrText)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", tc.in, err)
			continue
		}
		if got.TunnelName != tc.name || got.TunnelMTU != tc.mtu || got.Port != tc.port || got.Prefix != DefaultPrefix || got.VNI != 42 {
			t.Errorf("%+v: got %+v, want name %s MTU %d port %d", tc.in, got, tc.name, tc.mtu, tc.port)
		}
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"ntb-1234-1-a", "ntb-99999999999999999999-1-a", "ntb--", "ntb-1-", "x"} {
		f.Add("ntb", s)
	}
	f.Fuzz(func(t *testing.T, prefix, name string) {
		pid, ok := parseName(prefix, name)
		if !ok {
			if pid != 0 {
				t.Fatalf("parseName(%q, %q) returned pid %d without ok", prefix, name, pid)
			}
			return
		}
		if pid <= 0 || !strings.HasPrefix(name, prefix+"-") {
			t.Fatalf("parseName(%q, %q) = %d, ok for a name not of the form prefix-<pid>-...", prefix, name, pid)
		}
	})
}
