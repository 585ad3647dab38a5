// Package peerstate keeps the last peer measurement to each peer in
// nodetune's state directory, where serve's peer schedule and bench --peer
// save them and doctor (through the peers probe) and serve's cycles read
// them. The file is schema-versioned JSON, written atomically, and bounded
// to MaxPeers entries and MaxFileSize bytes.
package peerstate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"github.com/nodetune/nodetune/detect"
)

// FileName is the file's name in the state directory.
const FileName = "peers.json"

// Version is the schema version this package writes and reads.
const Version = 1

// MaxPeers bounds the entries kept: one per peer, the oldest dropped
// first. A ring measures one peer per node, so this leaves room for the
// peers of many ring changes and of bench runs by hand.
const MaxPeers = 32

// MaxCases bounds the cases kept of one measurement: four cases in two
// directions are eight.
const MaxCases = 16

// MaxFileSize bounds what Parse reads; a file nodetune wrote is far below.
const MaxFileSize = 1 << 20

// ErrVersion means the file was written by a schema this nodetune does not
// read.
var ErrVersion = errors.New("unknown peer measurement schema version")

// file is the JSON on disk.
type file struct {
	Version int                      `json:"version"`
	Peers   []detect.PeerMeasurement `json:"peers"`
}

// Path is the file's path in stateDir.
func Path(stateDir string) string { return filepath.Join(stateDir, FileName) }

// Parse reads a peer measurement file.
func Parse(r io.Reader) ([]detect.PeerMeasurement, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading peer measurements: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("peer measurements: the file is larger than %d bytes", MaxFileSize)
	}
	var f file
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decoding peer measurements: %w", err)
	}
	if f.Version != Version {
		return nil, fmt.Errorf("peer measurements: version %d: %w (this nodetune reads %d)", f.Version, ErrVersion, Version)
	}
	if len(f.Peers) > MaxPeers {
		return nil, fmt.Errorf("peer measurements: %d entries, more than %d", len(f.Peers), MaxPeers)
	}
	for _, m := range f.Peers {
		if m.Peer == "" {
			return nil, errors.New("peer measurements: an entry names no peer")
		}
		if len(m.Cases) > MaxCases {
			return nil, fmt.Errorf("peer measurements: %d cases for %s, more than %d", len(m.Cases), m.Peer, MaxCases)
		}
	}
	return f.Peers, nil
}

// Load reads the file at path. A file that does not exist holds no
// measurement: nil and no error.
func Load(path string) ([]detect.PeerMeasurement, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening peer measurements: %w", err)
	}
	defer f.Close()
	ms, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ms, nil
}

// mu serializes this process's saves; a lock file serializes processes
// (serve and a bench run by hand).
var mu sync.Mutex

// Save makes m the last measurement to m.Peer in stateDir's file. A file
// that cannot be read (damaged, or of another schema) is started afresh.
func Save(stateDir string, m detect.PeerMeasurement) error {
	if m.Peer == "" {
		return errors.New("saving a peer measurement: it names no peer")
	}
	if len(m.Cases) > MaxCases {
		m.Cases = m.Cases[:MaxCases]
	}
	mu.Lock()
	defer mu.Unlock()
	lock, err := os.OpenFile(filepath.Join(stateDir, "."+FileName+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("saving a peer measurement: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("saving a peer measurement: locking: %w", err)
	}
	path := Path(stateDir)
	old, err := Load(path)
	if err != nil {
		old = nil
	}
	peers := slices.DeleteFunc(old, func(o detect.PeerMeasurement) bool { return o.Peer == m.Peer })
	peers = append(peers, m)
	// Newest first, so the bound drops the oldest.
	slices.SortStableFunc(peers, func(a, b detect.PeerMeasurement) int { return b.At.Compare(a.At) })
	if len(peers) > MaxPeers {
		peers = peers[:MaxPeers]
	}
	data, err := json.MarshalIndent(file{Version: Version, Peers: peers}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding peer measurements: %w", err)
	}
	if len(data) > MaxFileSize {
		return fmt.Errorf("saving peer measurements: %d bytes, more than %d", len(data), MaxFileSize)
	}
	return writeAtomic(path, append(data, '\n'))
}

// writeAtomic writes data to path through a temporary file renamed over
// it, synced before and after, so a reader sees the old file or the new.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("saving peer measurements: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("saving peer measurements: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("saving peer measurements: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("saving peer measurements: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("saving peer measurements: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("saving peer measurements: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("saving peer measurements: %w", err)
	}
	defer d.Close()
	return d.Sync()
}
