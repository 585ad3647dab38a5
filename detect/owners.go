package detect

import (
	"fmt"
	"github.com/nodetune/nodetune/internal/shell"
	"path"
	"strings"
)

// Ownership is what the node's root filesystem says about who else sets
// its network settings: files that re-apply offload settings whenever a
// link appears, how Calico was installed, and the node's name.
type Ownership struct {
	// OffloadFiles are the udev rules, systemd .link files and
	// NetworkManager dispatcher scripts that set ethtool offload features,
	// and every .link file, because only the first .link file that matches
	// a device applies to it.
	OffloadFiles []OffloadFile `json:"offload_files,omitempty"`
	// FilesErr is why some of those places could not be read; then an
	// owner may exist that nodetune did not see.
	FilesErr Err `json:"files_error,omitzero"`
	// NodeName is the name Kubernetes and Calico know this node by, and
	// NodeNameSource where it came from; empty when nothing said.
	NodeName       string `json:"node_name,omitempty"`
	NodeNameSource string `json:"node_name_source,omitempty"`
	Calico         Calico `json:"calico"`
}

// Kinds of offload files.
const (
	FileUdevRule     = "udev-rule"
	FileLinkFile     = "systemd-link-file"
	FileNMDispatcher = "networkmanager-dispatcher"
	FileSystemdUnit  = "systemd-unit"
)

// OffloadFile is one rule, .link file or script that sets offload
// features on the devices it matches, each time it runs.
type OffloadFile struct {
	Kind string `json:"kind"`
	// Path is where the file is on the node, such as
	// /etc/udev/rules.d/90-flannel.rules.
	Path string `json:"path"`
	// Line is the first line of the rule, key or command, counting from 1;
	// LastLine is its last when it continues over several lines.
	Line     int `json:"line"`
	LastLine int `json:"last_line,omitempty"`
	// Text is what the file says there, continuation lines joined.
	Text string `json:"text"`
	// Match is which devices the file applies to.
	Match DeviceMatch `json:"match"`
	// Settings are the ethtool features it sets, by the name written
	// ("tx", "tx-checksum-ip-generic", or the .link key).
	Settings []FeatureSetting `json:"settings,omitempty"`
	// OnlyAction reports whether removing the rule or line removes nothing
	// else (a udev rule whose one action is the ethtool call, a .link key).
	OnlyAction bool `json:"only_action,omitempty"`
}

// FeatureSetting is one feature a file sets, and to what.
type FeatureSetting struct {
	Feature string `json:"feature"`
	On      bool   `json:"on"`
}

// DeviceMatch is how a file picks its devices.
type DeviceMatch struct {
	// Names are glob patterns (udev's, with | for alternatives, or
	// systemd's); a device matches when its name matches one of them.
	// Empty means any name.
	Names []string `json:"names,omitempty"`
	// NotNames are patterns the name must match none of.
	NotNames []string `json:"not_names,omitempty"`
	// Kinds are link kinds or drivers (vxlan, geneve, ipip) of which the
	// device must be one; empty means any.
	Kinds []string `json:"kinds,omitempty"`
	// NotKinds are link kinds or drivers the device must be none of.
	NotKinds []string `json:"not_kinds,omitempty"`
	// Never reports a condition that no tunnel device meets (a udev rule
	// for another subsystem or for removal only; a .link file with an empty
	// [Match], which systemd ignores).
	Never bool `json:"never,omitempty"`
	// Unchecked are conditions nodetune cannot check from a snapshot (MAC
	// address, sysfs path, host), as written; the file may or may not
	// apply.
	Unchecked []string `json:"unchecked,omitempty"`
	// By says which keys gave the names, for the explanation.
	By string `json:"by,omitempty"`
}

// Match results.
type matchResult int

const (
	matchNo matchResult = iota
	matchMaybe
	matchYes
)

// globMatch reports whether name matches pattern, a udev or systemd glob
// where | separates alternatives.
func globMatch(pattern, name string) bool { return GlobMatch(pattern, name) }

// GlobMatch reports whether s matches pattern, a udev or systemd glob
// (fnmatch(3), where | separates alternatives and "[!" negates a bracket
// expression as "[^" does).
func GlobMatch(pattern, s string) bool {
	for alt := range strings.SplitSeq(pattern, "|") {
		if ok, err := path.Match(fnmatchClasses(alt), s); err == nil && ok {
			return true
		}
	}
	return false
}

// fnmatchClasses rewrites fnmatch's bracket expressions in the form
// path.Match takes: "[!" as "[^", and a '-' that fnmatch takes literally
// (first or last in the brackets) escaped.
func fnmatchClasses(p string) string {
	var b strings.Builder
	inClass, first := false, false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			b.WriteByte(c)
			i++
			b.WriteByte(p[i])
			first = false
			continue
		case c == '[' && !inClass:
			inClass, first = true, true
			b.WriteByte(c)
			if i+1 < len(p) && p[i+1] == '!' {
				b.WriteByte('^')
				i++
			}
			continue
		case c == ']' && inClass && first:
			b.WriteString("\\]") // fnmatch: a ']' first in the brackets is literal
			first = false
			continue
		case c == ']' && inClass:
			inClass = false
		case c == '-' && inClass && (first || i+1 < len(p) && p[i+1] == ']'):
			b.WriteString("\\-")
			first = false
			continue
		}
		first = false
		b.WriteByte(c)
	}
	return b.String()
}

// match says whether m selects device dev of link kind.
func (m DeviceMatch) match(dev, kind string) matchResult {
	if m.Never {
		return matchNo
	}
	if len(m.Names) > 0 && !anyGlob(m.Names, dev) {
		return matchNo
	}
	if anyGlob(m.NotNames, dev) {
		return matchNo
	}
	if len(m.Kinds) > 0 && !anyGlob(m.Kinds, kind) {
		return matchNo
	}
	if anyGlob(m.NotKinds, kind) {
		return matchNo
	}
	if len(m.Unchecked) > 0 {
		return matchMaybe
	}
	return matchYes
}

func anyGlob(patterns []string, s string) bool {
	for _, p := range patterns {
		if globMatch(p, s) {
			return true
		}
	}
	return false
}

// txChecksumFeature reports whether an ethtool feature name, as ethtool
// -K or a .link file takes it, covers tx-checksum-ip-generic.
func txChecksumFeature(name string) bool {
	switch name {
	case "tx", "tx-checksumming", "TransmitChecksumOffload", FeatureTxChecksumGeneric:
		return true
	}
	return false
}

// txChecksumSetting returns the setting of f that covers tx checksum
// offload, if any.
func (f OffloadFile) txChecksumSetting() (FeatureSetting, bool) {
	for _, s := range f.Settings {
		if txChecksumFeature(s.Feature) {
			return s, true
		}
	}
	return FeatureSetting{}, false
}

// fileOwners returns an owner for each file in o that re-applies tx
// checksum offload on dev (of link kind), and one for files nodetune
// could not read.
func fileOwners(o Ownership, dev, kind string) []Owner {
	var out []Owner
	linkDecided := false
	for _, f := range o.OffloadFiles {
		res := f.Match.match(dev, kind)
		if res == matchNo {
			continue
		}
		if f.Kind == FileLinkFile {
			// Only the first .link file in lexical order that matches a
			// device is applied to it (systemd.link(5)).
			if linkDecided {
				continue
			}
			if res == matchYes {
				linkDecided = true
			}
		}
		set, ok := f.txChecksumSetting()
		if !ok {
			continue
		}
		out = append(out, fileOwner(f, set, dev, res == matchMaybe))
	}
	if o.FilesErr.Failed() {
		out = append(out, Owner{
			Name: OwnerUnknown,
			Why:  "nodetune could not read every place where a udev rule, .link file or NetworkManager script may re-apply offload settings: " + o.FilesErr.Error(),
			DurableFix: "check /etc/udev/rules.d, /etc/systemd/network and /etc/NetworkManager/dispatcher.d (and their /run, /usr/lib and /lib twins) " +
				"for ethtool -K or TransmitChecksumOffload= on " + dev + " before changing it",
		})
	}
	return out
}

// Owner names for files.
const (
	OwnerUdevRule     = FileUdevRule
	OwnerLinkFile     = FileLinkFile
	OwnerNMDispatcher = FileNMDispatcher
	OwnerSystemdUnit  = FileSystemdUnit
	// OwnerUnknown stands for places nodetune could not read.
	OwnerUnknown = "unknown"
)

func lines(f OffloadFile) string {
	if f.LastLine > f.Line {
		return fmt.Sprintf("lines %d-%d", f.Line, f.LastLine)
	}
	return fmt.Sprintf("line %d", f.Line)
}

func sedRange(f OffloadFile) string {
	if f.LastLine > f.Line {
		return fmt.Sprintf("%d,%dd", f.Line, f.LastLine)
	}
	return fmt.Sprintf("%dd", f.Line)
}

// fileOwner describes f as the owner of dev's tx checksum offload.
func fileOwner(f OffloadFile, set FeatureSetting, dev string, maybe bool) Owner {
	value := OnOff(set.On)
	if f.Kind == FileLinkFile {
		value = fmt.Sprint(set.On)
	}
	where := fmt.Sprintf("%s %s", f.Path, lines(f))
	o := Owner{Name: f.Kind, File: f.Path, Line: f.Line}
	match := ""
	if f.Match.By != "" {
		match = " (it matches " + f.Match.By + ")"
	}
	switch f.Kind {
	case FileUdevRule:
		o.Why = fmt.Sprintf("the udev rule at %s sets %s %s on %s each time udev handles the link's add event%s: `%s`",
			where, set.Feature, value, dev, match, f.Text)
	case FileLinkFile:
		o.Why = fmt.Sprintf("the systemd .link file %s sets %s=%s (%s) for %s%s; udev applies it each time the link is added",
			f.Path, set.Feature, value, lines(f), dev, match)
	case FileNMDispatcher:
		o.Why = fmt.Sprintf("the NetworkManager dispatcher script %s runs `%s` (%s) on NetworkManager's events%s",
			f.Path, f.Text, lines(f), match)
	case FileSystemdUnit:
		o.Why = fmt.Sprintf("the systemd unit %s runs `%s` (%s) each time it starts, at boot when it is enabled%s",
			f.Path, f.Text, lines(f), match)
	}
	if maybe {
		o.Why += "; it also has conditions nodetune cannot check (" + strings.Join(f.Match.Unchecked, ", ") + "), so it may not apply to " + dev
	}
	o.Command, o.DurableFix = fileFix(f, set)
	return o
}

// fileFix is the durable fix for a file that sets tx checksum offload:
// a command to run when one line can simply go, and the fix in words.
func fileFix(f OffloadFile, set FeatureSetting) (command, fix string) {
	reload := ""
	switch f.Kind {
	case FileUdevRule, FileLinkFile:
		reload = "udevadm control --reload"
	}
	switch {
	case f.Kind == FileNMDispatcher:
		fix = fmt.Sprintf("remove the ethtool call at %s of %s (or its `%s %s`)", lines(f), f.Path, set.Feature, OnOff(set.On))
	case f.Kind == FileSystemdUnit && f.OnlyAction:
		unit := path.Base(f.Path)
		command = "systemctl disable " + shellQuote(unit)
		fix = fmt.Sprintf("the unit does nothing else (%s: `%s`): %s, or delete that line", lines(f), f.Text, command)
	case f.Kind == FileSystemdUnit:
		fix = fmt.Sprintf("remove the ethtool call at %s of %s (`%s`), or its `%s %s`, then systemctl daemon-reload",
			lines(f), f.Path, f.Text, set.Feature, OnOff(set.On))
	case f.OnlyAction:
		command = fmt.Sprintf("sed -i '%s' %s && %s", sedRange(f), shellQuote(f.Path), reload)
		fix = fmt.Sprintf("delete %s of %s (`%s`): %s", lines(f), f.Path, f.Text, command)
	default:
		fix = fmt.Sprintf("edit %s %s: drop `%s %s` from its ethtool command (the rule does more, so keep the rest), then %s",
			f.Path, lines(f), set.Feature, OnOff(set.On), reload)
	}
	if strings.HasPrefix(f.Path, "/run/") {
		// /run is rebuilt at every boot: the file is generated.
		src := "what writes it at boot"
		if strings.Contains(path.Base(f.Path), "netplan") {
			src = "its netplan source: the device's offload keys (transmit-checksum-offload and the like) in /etc/netplan/*.yaml, then `netplan apply`"
		}
		return "", fmt.Sprintf("%s is generated at boot, so editing it does not last: change %s (the line in question: %s, `%s`)",
			f.Path, src, lines(f), f.Text)
	}
	if dir, ok := vendorDir(f.Path); ok {
		command = ""
		fix = fmt.Sprintf("%s is shipped by a package and an update restores it: copy it to %s and change the copy there "+
			"(a file of the same name in %s overrides it): ", f.Path, dir, dir) + fix
	}
	return command, fix
}

// vendorDir returns the /etc directory that overrides path, when path is
// in a vendor directory (/usr/lib, /lib).
func vendorDir(p string) (string, bool) {
	for _, pre := range []string{"/usr/lib/", "/lib/"} {
		if rest, ok := strings.CutPrefix(p, pre); ok {
			return "/etc/" + path.Dir(rest), true
		}
	}
	return "", false
}

// shellQuote quotes s for a POSIX shell, as every command nodetune prints.
var shellQuote = shell.Quote
