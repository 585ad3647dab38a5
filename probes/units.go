package probes

import (
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodetune/nodetune/detect"
)

// unitExecKeys are the [Service] keys whose commands run each time the
// unit starts (systemd.service(5)).
var unitExecKeys = map[string]bool{"ExecStartPre": true, "ExecStart": true, "ExecStartPost": true}

// unitExec is one command line of a service unit.
type unitExec struct {
	Line  int
	Key   string
	Words []string
}

// parseUnitFile returns the commands a service unit runs when it starts.
func parseUnitFile(r io.Reader) ([]unitExec, error) {
	var out []unitExec
	err := scanINI(r, func(section, key, value string, line int) {
		if section != "Service" || !unitExecKeys[key] || value == "" {
			return
		}
		// Prefixes that change how systemd runs the command, not what.
		value = strings.TrimLeft(value, "@-:+!")
		out = append(out, unitExec{Line: line, Key: key, Words: splitUdevProgram(value)})
	})
	return out, err
}

// unitOffloadFiles returns an OffloadFile for each ethtool offload call a
// service unit makes when it starts; enabled says whether something pulls
// the unit in at boot.
func unitOffloadFiles(execs []unitExec, hostPath string, enabled bool, read scriptReader) []detect.OffloadFile {
	var out []detect.OffloadFile
	for _, ex := range execs {
		calls := commandOffload(ex.Words, read)
		for _, c := range calls {
			f := detect.OffloadFile{
				Kind: detect.FileSystemdUnit, Path: hostPath, Line: ex.Line, Text: ex.Key + "=" + strings.Join(ex.Words, " "),
				Settings: c.Settings, OnlyAction: len(execs) == 1 && len(calls) == 1,
			}
			if c.Text != strings.Join(ex.Words, " ") {
				f.Text += " (" + c.Text + ")" // a call in a script the line runs
			}
			if strings.ContainsAny(c.Device, "$?%") {
				f.Match.Unchecked = append(f.Match.Unchecked, "the device "+c.Device+" is not written in the unit")
			} else {
				f.Match.Names, f.Match.By = []string{c.Device}, "its ethtool command's device "+c.Device
			}
			if !enabled {
				f.Match.Unchecked = append(f.Match.Unchecked, "the unit is not enabled, so it runs only when something starts it")
			}
			out = append(out, f)
		}
	}
	return out
}

// enabledUnits returns the units that a .wants or .requires directory
// under /etc/systemd/system or /usr/lib/systemd/system links to.
func (h *Host) enabledUnits() map[string]bool {
	out := map[string]bool{}
	for _, dir := range []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"} {
		entries, err := os.ReadDir(filepath.Join(h.RootFS, dir))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.IsDir() || !(strings.HasSuffix(e.Name(), ".wants") || strings.HasSuffix(e.Name(), ".requires")) {
				continue
			}
			links, err := os.ReadDir(filepath.Join(h.RootFS, dir, e.Name()))
			if err != nil {
				continue
			}
			for i, l := range links {
				if i >= maxOwnerDirEntries {
					break
				}
				out[l.Name()] = true
			}
		}
	}
	return out
}
