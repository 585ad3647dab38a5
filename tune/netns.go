package tune

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// NetNSAlive reports whether the network namespace id, as
// /proc/PID/ns/net reads ("net:[4026532281]"), still exists. The kernel
// keeps a namespace while a task is in it, a file descriptor holds it, or
// a bind mount (such as /run/netns/NAME, in any mount namespace) pins it;
// each is visible under <ProcFS>: task/*/ns/net, fd/* and mountinfo of
// every process. Processes that exit during the scan are skipped; a
// process whose entries cannot be read, or a procfs that does not show every
// process (seesEveryProcess), makes a namespace that no process holds
// unknown (an error), never "gone".
func (h *Host) NetNSAlive(ctx context.Context, id string) (bool, error) {
	procs, err := os.ReadDir(h.ProcFS)
	if err != nil {
		return false, classify("listing processes in "+h.ProcFS, err)
	}
	needle := []byte(" " + id + " ")
	ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(id, "net:["), "]"), 10, 64)
	if err != nil {
		return false, fmt.Errorf("network namespace %q: not net:[INODE]", id)
	}
	var unknown error
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		dir := filepath.Join(h.ProcFS, p.Name())
		found, err := holdsNetNS(dir, id, ino, needle)
		switch {
		case found:
			return true, nil
		case errors.Is(err, fs.ErrNotExist):
			// exited
		case err != nil && unknown == nil:
			unknown = classify(fmt.Sprintf("looking for network namespace %s in %s", id, dir), err)
		}
	}
	if unknown == nil {
		unknown = h.seesEveryProcess()
	}
	return false, unknown
}

// seesEveryProcess checks that <ProcFS> is a procfs of the node's initial
// PID namespace, the only one that shows every process: there, and only
// there, PID 2 is the kernel's kthreadd. A procfs of a pod without hostPID
// shows some processes, and a namespace none of them holds may still be
// held by another (the node's own namespace, for one).
func (h *Host) seesEveryProcess() error {
	comm, err := os.ReadFile(filepath.Join(h.ProcFS, "2", "comm"))
	if err == nil && strings.TrimSpace(string(comm)) == "kthreadd" {
		return nil
	}
	return fmt.Errorf("%s does not show the kernel's threads (no kthreadd at PID 2): it is the procfs of another PID namespace, which sees only some of the node's processes; give the host's with --path.procfs", h.ProcFS)
}

// holdsNetNS reports whether the process at dir is in, holds or mounts
// network namespace id, whose nsfs inode is ino. A descriptor opened
// through a bind mount reads as the mount's path, so descriptors are
// compared by inode too.
func holdsNetNS(dir, id string, ino uint64, needle []byte) (bool, error) {
	for _, sub := range []string{"task", "fd"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return false, err
		}
		for _, e := range ents {
			link := filepath.Join(dir, sub, e.Name())
			if sub == "task" {
				link = filepath.Join(link, "ns/net")
			}
			got, err := os.Readlink(link)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return false, err
			}
			if got == id {
				return true, nil
			}
			if sub == "fd" && !strings.HasPrefix(got, "socket:") && !strings.HasPrefix(got, "pipe:") && !strings.HasPrefix(got, "anon_inode:") {
				var st unix.Stat_t
				if unix.Stat(link, &st) == nil && st.Ino == ino && st.Mode&unix.S_IFMT == unix.S_IFREG && isNsfs(link) {
					return true, nil
				}
			}
		}
	}
	mi, err := os.ReadFile(filepath.Join(dir, "mountinfo"))
	if err != nil {
		return false, err
	}
	return bytes.Contains(mi, needle), nil
}

// isNsfs reports whether path (a descriptor's link) is a file of nsfs, the
// filesystem of namespace files.
func isNsfs(path string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(path, &fs) == nil && fs.Type == unix.NSFS_MAGIC
}
