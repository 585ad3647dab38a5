package probes

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestOffloadFilesScriptNotARegularFile: a program a udev rule runs that
// is a FIFO (or a device, which reads without end) is not read: the probe
// returns at once instead of waiting for a writer that never comes.
func TestOffloadFilesScriptNotARegularFile(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "/etc/udev/rules.d/90-x.rules", `SUBSYSTEM=="net", KERNEL=="flannel.*", RUN+="/usr/local/bin/offload %k"`+"\n", 0o644)
	fifo := filepath.Join(root, "/usr/local/bin/offload")
	if err := os.MkdirAll(filepath.Dir(fifo), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o755); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := (&Host{Paths: Paths{RootFS: root}}).OffloadFiles()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("OffloadFiles: %v", err)
		}
	case <-time.After(5 * time.Second):
		// Let the stuck reader go before failing.
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("OffloadFiles waited on a FIFO")
	}
}

// TestReadRootBounded: what readRoot returns is bounded, whatever the
// file's size said when it was looked at.
func TestReadRootBounded(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "/big", string(make([]byte, maxOwnerFileBytes+1)), 0o644)
	if b, err := (&Host{Paths: Paths{RootFS: root}}).readRoot("/big"); err == nil {
		t.Errorf("read %d bytes of a file over the bound", len(b))
	}
	writeFile(t, root, "/small", "#!/bin/sh\n", 0o755)
	if b, err := (&Host{Paths: Paths{RootFS: root}}).readRoot("/small"); err != nil || string(b) != "#!/bin/sh\n" {
		t.Errorf("readRoot(/small) = %q, %v", b, err)
	}
}
