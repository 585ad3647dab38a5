package probes

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/peerstate"
)

// TestPeersProbe: no file is no measurement and no error; a saved one is
// read; a damaged one is unknown, with the reason, not "none".
func TestPeersProbe(t *testing.T) {
	dir := t.TempDir()
	h := &Host{PeerFile: peerstate.Path(dir)}
	if p := h.Peers(); p.Err.Failed() || len(p.Measurements) != 0 {
		t.Errorf("no file: %+v", p)
	}
	m := detect.PeerMeasurement{Peer: "b", Device: "flannel.1", MTU: 1450, At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := peerstate.Save(dir, m); err != nil {
		t.Fatal(err)
	}
	if p := h.Peers(); p.Err.Failed() || len(p.Measurements) != 1 || p.Measurements[0].Peer != "b" {
		t.Errorf("saved: %+v", p)
	}
	if err := os.WriteFile(filepath.Join(dir, peerstate.FileName), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p := h.Peers(); !p.Err.Failed() || len(p.Measurements) != 0 {
		t.Errorf("damaged: %+v; want the error", p)
	}
	h.PeerFile = dir // a directory: unreadable as a file
	if p := h.Peers(); !p.Err.Failed() || errors.Is(p.Err, fs.ErrNotExist) {
		t.Errorf("a directory: %+v; want an error that is not 'not exist'", p)
	}
}
