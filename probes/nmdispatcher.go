package probes

import (
	"io"
	"slices"
	"strings"

	"github.com/nodetune/nodetune/detect"
)

// nmDeviceVars are the variables that hold the interface a NetworkManager
// dispatcher script is called for: its first argument, and the
// environment NetworkManager sets (NetworkManager-dispatcher(8)).
var nmDeviceVars = []string{"1", "DEVICE_IFACE", "DEVICE_IP_IFACE"}

// parseDispatcherScript returns the ethtool offload calls of a
// NetworkManager dispatcher script at hostPath, each with the devices it
// applies to: the device it names, or, when it names the interface it was
// called for, the names the script compares that interface with.
func parseDispatcherScript(r io.Reader, hostPath string) ([]detect.OffloadFile, error) {
	sc, err := scanShell(r, hostPath)
	if err != nil {
		return nil, err
	}
	var out []detect.OffloadFile
	for _, c := range sc.calls {
		f := detect.OffloadFile{
			Kind: detect.FileNMDispatcher, Path: hostPath, Line: c.Line, LastLine: c.LastLine,
			Text: c.Text, Settings: c.Settings,
		}
		dev := c.Device
		if v, ok := strings.CutPrefix(dev, "$"); ok {
			if lit, ok := sc.vars[v]; ok {
				dev = lit
			}
		}
		switch {
		case !strings.ContainsAny(dev, "$?"):
			f.Match = detect.DeviceMatch{Names: []string{dev}, By: "its ethtool command's device " + dev}
		default:
			// Only a test around the call says where it applies: a name
			// compared elsewhere may be one the script skips.
			v := strings.TrimPrefix(dev, "$")
			vars := append([]string{v}, nmDeviceVars...)
			if names := guardNames(c.Guards, vars); len(names) > 0 {
				f.Match = detect.DeviceMatch{Names: names, By: "the names the script compares " + dev + " with"}
				break
			}
			why := "the device " + dev + " is whichever interface NetworkManager calls the script for"
			if compared := guardNames(sc.guards, vars); len(compared) > 0 {
				why += " (the script compares it with " + strings.Join(compared, ", ") + ", but not around this call)"
			}
			f.Match = detect.DeviceMatch{Unchecked: []string{why}}
		}
		out = append(out, f)
	}
	return out, nil
}

// guardNames returns the literals guards holds for any of vars, once each.
func guardNames(guards map[string][]string, vars []string) []string {
	var names []string
	for _, name := range vars {
		for _, g := range guards[name] {
			if !slices.Contains(names, g) {
				names = append(names, g)
			}
		}
	}
	return names
}
