package probes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nodetune/nodetune/detect"
)

// Bounds on what the owner probe reads: never the whole disk.
const (
	maxOwnerDirEntries = 512
	maxOwnerFileBytes  = 256 << 10
)

// ownerPlace is a set of directories that together hold one kind of file,
// highest precedence first: a file in an earlier directory hides one of
// the same name in a later one.
type ownerPlace struct {
	kind string
	dirs []string
	// suffix selects files by name; "" takes executables, as
	// NetworkManager does.
	suffix string
}

var ownerPlaces = []ownerPlace{
	{detect.FileUdevRule, []string{"/etc/udev/rules.d", "/run/udev/rules.d", "/usr/local/lib/udev/rules.d", "/usr/lib/udev/rules.d", "/lib/udev/rules.d"}, ".rules"},
	{detect.FileLinkFile, []string{"/etc/systemd/network", "/run/systemd/network", "/usr/local/lib/systemd/network", "/usr/lib/systemd/network", "/lib/systemd/network"}, ".link"},
	{detect.FileNMDispatcher, []string{"/etc/NetworkManager/dispatcher.d", "/usr/lib/NetworkManager/dispatcher.d"}, ""},
	{detect.FileSystemdUnit, []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}, ".service"},
	{detect.FileNMDispatcher, []string{"/etc/NetworkManager/dispatcher.d/pre-up.d", "/usr/lib/NetworkManager/dispatcher.d/pre-up.d"}, ""},
}

// ownerFile is a file found in an ownerPlace.
type ownerFile struct {
	name     string // base name, which orders and overrides
	hostPath string // where it is on the node
	data     []byte
}

// OffloadFiles finds, under the root filesystem, the udev rules, systemd
// .link files and NetworkManager dispatcher scripts that set ethtool
// offload features, in the order they apply. Each place is read within
// bounds; what could not be read is in the returned error.
func (h *Host) OffloadFiles() ([]detect.OffloadFile, error) {
	var out []detect.OffloadFile
	var errs []error
	var enabled map[string]bool
	for _, place := range ownerPlaces {
		files, err := h.placeFiles(place)
		errs = append(errs, err)
		if place.kind == detect.FileSystemdUnit {
			enabled = h.enabledUnits()
		}
		for _, f := range files {
			got, err := h.offloadFilesIn(place.kind, f, enabled[f.name])
			if err != nil {
				errs = append(errs, err)
			}
			out = append(out, got...)
		}
	}
	return out, errors.Join(errs...)
}

// offloadFilesIn parses one file of kind. A file that does not parse is an
// error only when it mentions ethtool or offloads: a broken file that does
// not is nobody's owner.
func (h *Host) offloadFilesIn(kind string, f ownerFile, enabled bool) ([]detect.OffloadFile, error) {
	var out []detect.OffloadFile
	var err error
	switch kind {
	case detect.FileUdevRule:
		var rules []udevRule
		rules, perr := parseUdevRules(bytes.NewReader(f.data))
		for _, r := range rules {
			out = append(out, udevOffloadFiles(r, f.hostPath, h.readScript)...)
		}
		// udev skips a line that is not a rule; it matters only if it
		// may have been meant to run ethtool.
		var bad []error
		for _, le := range udevLineErrors(perr) {
			if strings.Contains(le.Text, "ethtool") {
				bad = append(bad, le)
			}
		}
		if len(bad) > 0 {
			return out, fmt.Errorf("%s: %w", f.hostPath, errors.Join(bad...))
		}
		if perr != nil && len(udevLineErrors(perr)) == 0 {
			err = perr // not about one line: the file could not be read whole
		}
	case detect.FileLinkFile:
		var lf linkFile
		if lf, err = parseLinkFile(bytes.NewReader(f.data)); err == nil {
			out = append(out, linkOffloadFile(lf, f.hostPath))
		}
	case detect.FileNMDispatcher:
		out, err = parseDispatcherScript(bytes.NewReader(f.data), f.hostPath)
	case detect.FileSystemdUnit:
		var execs []unitExec
		if execs, err = parseUnitFile(bytes.NewReader(f.data)); err == nil {
			out = unitOffloadFiles(execs, f.hostPath, enabled, h.readScript)
		}
	}
	if err != nil && (bytes.Contains(f.data, []byte("ethtool")) || bytes.Contains(f.data, []byte("Offload"))) {
		return out, fmt.Errorf("%s: %w", f.hostPath, err)
	}
	return out, nil
}

// readScript reads a script that a rule or unit runs, under the root
// filesystem and within bounds.
func (h *Host) readScript(hostPath string) ([]byte, error) { return h.readRoot(hostPath) }

// placeFiles lists the files of place that apply, by name, in lexical
// order: for each name the one in the highest-precedence directory, unless
// that one masks it (empty, or a link to /dev/null).
func (h *Host) placeFiles(place ownerPlace) ([]ownerFile, error) {
	seen := map[string]bool{}
	var files []ownerFile
	var errs []error
	for _, dir := range place.dirs {
		entries, err := os.ReadDir(filepath.Join(h.RootFS, dir))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, detect.Classify("listing "+dir, err))
			continue
		}
		if len(entries) > maxOwnerDirEntries {
			errs = append(errs, fmt.Errorf("%s has %d entries; nodetune reads the first %d", dir, len(entries), maxOwnerDirEntries))
			entries = entries[:maxOwnerDirEntries]
		}
		for _, e := range entries {
			name := e.Name()
			if seen[name] || (place.suffix != "" && !strings.HasSuffix(name, place.suffix)) || strings.HasPrefix(name, ".") {
				continue
			}
			f, masked, err := h.readOwnerFile(dir, name, place.suffix == "")
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if f == nil && !masked {
				continue // not a file of this kind: a directory, or not executable
			}
			seen[name] = true
			if !masked {
				files = append(files, *f)
			}
		}
	}
	slices.SortFunc(files, func(a, b ownerFile) int { return strings.Compare(a.name, b.name) })
	return files, errors.Join(errs...)
}

// readOwnerFile reads dir/name under the root filesystem, following one
// symlink within it. It reports a file masked by a link to /dev/null or by
// being empty, and returns nil for entries that are not regular files (or
// not executable, when exec is set).
func (h *Host) readOwnerFile(dir, name string, exec bool) (*ownerFile, bool, error) {
	hostPath := filepath.Join(dir, name)
	p := filepath.Join(h.RootFS, hostPath)
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, false, detect.Classify("reading "+hostPath, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(p)
		if err != nil {
			return nil, false, detect.Classify("reading "+hostPath, err)
		}
		if target == "/dev/null" {
			return nil, true, nil
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		p = filepath.Join(h.RootFS, target)
		if fi, err = os.Stat(p); err != nil {
			return nil, false, detect.Classify("reading "+hostPath+" (a link to "+target+")", err)
		}
	}
	if !fi.Mode().IsRegular() || (exec && fi.Mode()&0o111 == 0) {
		return nil, false, nil
	}
	if fi.Size() == 0 {
		return nil, true, nil
	}
	data, err := readRegular(p, hostPath, maxOwnerFileBytes)
	if err != nil {
		return nil, false, err
	}
	return &ownerFile{name: name, hostPath: hostPath, data: data}, false, nil
}

// readRegular reads the regular file at p (hostPath where the node sees
// it) if it holds at most limit bytes. It opens without blocking and
// checks what it opened, so a FIFO (which would wait for a writer) or a
// device (which may read without end) put where a file was expected is
// refused, and it reads no more than limit+1 bytes whatever the file's
// size said a moment before.
func readRegular(p, hostPath string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, detect.Classify("reading "+hostPath, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, detect.Classify("reading "+hostPath, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", hostPath, fi.Mode().Type())
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes; nodetune reads files up to %d", hostPath, fi.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, detect.Classify("reading "+hostPath, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s grew past %d bytes while read", hostPath, limit)
	}
	return data, nil
}
