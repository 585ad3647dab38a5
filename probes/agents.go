package probes

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/nodetune/nodetune/detect"
)

// Agents lists the CNI config files under <rootfs>/etc/cni/net.d and the
// networking agents (and irqbalance) in the process list.
func (h *Host) Agents() detect.Host {
	var out detect.Host
	entries, err := os.ReadDir(filepath.Join(h.RootFS, "etc/cni/net.d"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		// No CNI configured here: a plain host.
	case err != nil:
		out.CNIErr = fail("listing /etc/cni/net.d", err)
	default:
		for _, e := range entries {
			if !e.IsDir() {
				out.CNIConfigs = append(out.CNIConfigs, e.Name())
			}
		}
	}
	procs, err := h.proc.AllProcs()
	if err != nil {
		out.ProcErr = fail("listing processes", err)
		return out
	}
	seen := map[string]bool{}
	for _, p := range procs {
		comm, err := p.Comm()
		if err != nil {
			continue // the process exited while we looked
		}
		if slices.Contains(detect.WatchedProcesses, comm) || comm == detect.ProcIRQBalance {
			seen[comm] = true
		}
	}
	for name := range seen {
		out.Processes = append(out.Processes, name)
	}
	sort.Strings(out.Processes)
	return out
}
