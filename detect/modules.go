package detect

import (
	"path"
	"strings"
)

// Modules is what the kernel says about its modules: which are loaded, which
// are built in, and which appear under /sys/module. Probes and tune fill it
// from the host, and Has decides.
type Modules struct {
	// Loaded are the modules in /proc/modules (ParseModules).
	Loaded map[string]bool
	// Builtin are the modules in /lib/modules/<release>/modules.builtin
	// (ParseBuiltinModules).
	Builtin map[string]bool
	// SysFS are the modules found as /sys/module/NAME. A loadable module
	// appears there once loaded; a built-in one only if it has parameters,
	// which ip_vs has and ip_vs_rr, ip_vs_wrr and ip_vs_sh have not.
	SysFS map[string]bool
}

// Has reports whether the kernel has module name, loaded or built in.
func (m Modules) Has(name string) bool {
	n := ModuleName(name)
	return m.Loaded[n] || m.Builtin[n] || m.SysFS[n]
}

// ModuleName is the kernel's canonical form of a module name: it treats '-'
// and '_' alike and lists modules with '_' in /proc/modules and /sys/module.
func ModuleName(name string) string { return strings.ReplaceAll(name, "-", "_") }

// validModule reports whether name is made of the letters, digits, '_' and
// '-' that module names are made of.
func validModule(name string) bool {
	return name != "" && !strings.ContainsFunc(name, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' && r != '-'
	})
}

// ParseModules returns the names of the modules in /proc/modules text, one
// module a line with its name first: "ip_vs 204800 3 ip_vs_rr, Live 0x0".
// A line whose first field is no module name is skipped.
func ParseModules(text string) map[string]bool {
	out := map[string]bool{}
	for line := range strings.Lines(text) {
		if f := strings.Fields(line); len(f) > 0 && validModule(f[0]) {
			out[ModuleName(f[0])] = true
		}
	}
	return out
}

// ParseBuiltinModules returns the names of the modules built into the
// kernel, from the text of modules.builtin: one path a line, relative to the
// release's module directory, such as kernel/net/netfilter/ipvs/ip_vs_rr.ko.
func ParseBuiltinModules(text string) map[string]bool {
	out := map[string]bool{}
	for line := range strings.Lines(text) {
		base := path.Base(strings.TrimSpace(line))
		if name, ok := strings.CutSuffix(base, ".ko"); ok && validModule(name) {
			out[ModuleName(name)] = true
		}
	}
	return out
}

// BuiltinModulesPath is where kernel release keeps its modules.builtin,
// relative to the root filesystem, or "" when release is no name a directory
// can have.
func BuiltinModulesPath(release string) string {
	release = strings.TrimSpace(release)
	if release == "" || release == "." || release == ".." || strings.ContainsAny(release, "/\x00\n") {
		return ""
	}
	return path.Join("lib/modules", release, "modules.builtin")
}
