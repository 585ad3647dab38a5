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
)

// NetNSAlive reports whether the network namespace id, as
// /proc/PID/ns/net reads ("net:[4026532281]"), still exists. The kernel
// keeps a namespace while a task is in it, a file descriptor holds it, or
// a bind mount (such as /run/netns/NAME, in any mount namespace) pins it;
// each is visible under <ProcFS>: task/*/ns/net, fd/* and mountinfo of
// every process. Processes that exit during the scan are skipped; a
// process whose entries cannot be read makes the answer unknown (an
// error), never "gone".
func (h *Host) NetNSAlive(ctx context.Context, id string) (bool, error) {
	procs, err := os.ReadDir(h.ProcFS)
	if err != nil {
		return false, classify("listing processes in "+h.ProcFS, err)
	}
	needle := []byte(" " + id + " ")
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		dir := filepath.Join(h.ProcFS, p.Name())
		found, err := holdsNetNS(dir, id, needle)
		if errors.Is(err, fs.ErrNotExist) {
			continue // exited
		}
		if err != nil {
			return false, classify(fmt.Sprintf("looking for network namespace %s in %s", id, dir), err)
		}
		if found {
			return true, nil
		}
	}
	return false, nil
}

// holdsNetNS reports whether the process at dir is in, holds or mounts
// network namespace id.
func holdsNetNS(dir, id string, needle []byte) (bool, error) {
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
			if got, err := os.Readlink(link); err == nil && got == id {
				return true, nil
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return false, err
			}
		}
	}
	mi, err := os.ReadFile(filepath.Join(dir, "mountinfo"))
	if err != nil {
		return false, err
	}
	return bytes.Contains(mi, needle), nil
}
