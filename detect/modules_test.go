package detect

import (
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
)

func TestParseModules(t *testing.T) {
	text := "ip_vs_rr 12288 1 - Live 0x0000000000000000\nip_vs 204800 3 ip_vs_rr, Live 0x0000000000000000\n\nnf_conntrack 196608 5 - Live 0x0\n"
	want := map[string]bool{"ip_vs_rr": true, "ip_vs": true, "nf_conntrack": true}
	if diff := cmp.Diff(want, ParseModules(text)); diff != "" {
		t.Error(diff)
	}
}

// builtin is modules.builtin as a Debian 6.12 kernel that builds IPVS in
// ships it, shortened.
const builtin = `kernel/crypto/crc32c_generic.ko
kernel/net/netfilter/ipvs/ip_vs.ko
kernel/net/netfilter/ipvs/ip_vs_rr.ko
kernel/net/netfilter/ipvs/ip_vs_wrr.ko
kernel/net/netfilter/ipvs/ip_vs_sh.ko
kernel/drivers/net/vxlan/vxlan.ko
kernel/fs/nls/nls-cp437.ko

not-a-module.txt
`

func TestParseBuiltinModules(t *testing.T) {
	want := map[string]bool{"crc32c_generic": true, "ip_vs": true, "ip_vs_rr": true, "ip_vs_wrr": true, "ip_vs_sh": true, "vxlan": true, "nls_cp437": true}
	if diff := cmp.Diff(want, ParseBuiltinModules(builtin)); diff != "" {
		t.Error(diff)
	}
}

// TestModulesHas: a module counts when loaded, built in, or under
// /sys/module; built-in IPVS schedulers have no parameters, so only
// modules.builtin tells that they are there.
func TestModulesHas(t *testing.T) {
	for _, tt := range []struct {
		name string
		m    Modules
		want map[string]bool
	}{
		{"built in: ip_vs has parameters, the schedulers have none",
			Modules{Builtin: ParseBuiltinModules(builtin), SysFS: map[string]bool{"ip_vs": true}},
			map[string]bool{"ip_vs": true, "ip_vs_rr": true, "ip_vs_wrr": true, "ip_vs_sh": true}},
		{"built in, modules.builtin unreadable",
			Modules{SysFS: map[string]bool{"ip_vs": true}},
			map[string]bool{"ip_vs": true, "ip_vs_rr": false, "ip_vs_wrr": false, "ip_vs_sh": false}},
		{"loaded",
			Modules{Loaded: ParseModules("ip_vs_rr 12288 1 - Live 0x0\nip_vs 204800 3 ip_vs_rr, Live 0x0\n")},
			map[string]bool{"ip_vs": true, "ip_vs_rr": true, "ip_vs_wrr": false, "ip_vs_sh": false}},
		{"nothing", Modules{}, map[string]bool{"ip_vs": false, "ip_vs_rr": false, "ip_vs_wrr": false, "ip_vs_sh": false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]bool{}
			for _, name := range IPVSModuleNames {
				got[name] = tt.m.Has(name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Error(diff)
			}
		})
	}
	if !(Modules{Builtin: ParseBuiltinModules(builtin)}).Has("nls-cp437") {
		t.Error("Has does not treat - and _ alike")
	}
}

func TestBuiltinModulesPath(t *testing.T) {
	for in, want := range map[string]string{
		"6.18.44-fc-v595\n": "lib/modules/6.18.44-fc-v595/modules.builtin",
		"":                  "", "..": "", "../../etc": "", "a/b": "",
	} {
		if got := BuiltinModulesPath(in); got != want {
			t.Errorf("BuiltinModulesPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// goodName reports whether name can be a module name as the parsers
// return it: not empty, no whitespace, no '/', '_' for '-'.
func goodName(name string) bool {
	return name != "" && !strings.ContainsFunc(name, unicode.IsSpace) && !strings.ContainsAny(name, "/-")
}

func FuzzParseModules(f *testing.F) {
	f.Add("ip_vs 1 0 - Live 0x0\n")
	f.Add("a\tb c\n\n  d-e\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		for name := range ParseModules(s) {
			if !goodName(name) {
				t.Fatalf("bad module name %q", name)
			}
		}
	})
}

func FuzzParseBuiltinModules(f *testing.F) {
	f.Add(builtin)
	f.Add("kernel/x/ .ko\n/.ko\nkernel/a b.ko\n")
	f.Fuzz(func(t *testing.T, s string) {
		for name := range ParseBuiltinModules(s) {
			if !goodName(name) {
				t.Fatalf("bad module name %q", name)
			}
		}
	})
}

func FuzzBuiltinModulesPath(f *testing.F) {
	for _, s := range []string{"6.18.0", "..", "a/b", "", " 5.4.0-150-generic\n", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, release string) {
		p := BuiltinModulesPath(release)
		if p == "" {
			return
		}
		dir, file := strings.TrimPrefix(p, "lib/modules/"), "/modules.builtin"
		if !strings.HasPrefix(p, "lib/modules/") || !strings.HasSuffix(dir, file) || strings.Count(dir, "/") != 1 || strings.HasPrefix(dir, "..") && strings.TrimSuffix(dir, file) == ".." {
			t.Fatalf("BuiltinModulesPath(%q) = %q leaves lib/modules", release, p)
		}
	})
}
