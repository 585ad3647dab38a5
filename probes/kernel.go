package probes

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/nodetune/nodetune/detect"
)

// Kernel reads the release string from <procfs>/sys/kernel/osrelease, so a
// fixture tree can stand in for the running kernel.
func (h *Host) Kernel() detect.Kernel {
	b, err := os.ReadFile(filepath.Join(h.ProcFS, "sys/kernel/osrelease"))
	if err != nil {
		return detect.Kernel{Err: fail("reading kernel release", err)}
	}
	k := detect.Kernel{Release: strings.TrimSpace(string(b))}
	v, err := detect.ParseRelease(k.Release)
	if err != nil {
		k.Err = detect.Fail(err)
		return k
	}
	k.Version = v
	return k
}

// Memory reads MemTotal from <procfs>/meminfo.
func (h *Host) Memory() detect.Memory {
	mi, err := h.proc.Meminfo()
	if err != nil {
		return detect.Memory{Err: fail("reading meminfo", err)}
	}
	if mi.MemTotalBytes == nil {
		return detect.Memory{Err: fail("reading meminfo", errMissing("MemTotal"))}
	}
	return detect.Memory{TotalBytes: *mi.MemTotalBytes}
}
