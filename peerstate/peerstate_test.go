package peerstate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
)

func measurement(peer string, at time.Time, bps float64) detect.PeerMeasurement {
	return detect.PeerMeasurement{Peer: peer, Address: "10.0.0.2", Device: "flannel.1", MTU: 1450, At: at.UTC(),
		Cases: []detect.PeerCase{{Name: detect.PeerCaseHost, Direction: detect.PeerSend, BitsPerSecond: bps, Bottleneck: "cpu1 at 100% softirq on the receiver"}}}
}

// TestSaveLoad: one entry per peer, the newest kept, the oldest dropped
// past MaxPeers, and a missing file holds nothing.
func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	if ms, err := Load(Path(dir)); ms != nil || err != nil {
		t.Fatalf("Load of a missing file = %v, %v; want nothing", ms, err)
	}
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	if err := Save(dir, measurement("b", t0, 1e9)); err != nil {
		t.Fatal(err)
	}
	if err := Save(dir, measurement("c", t0.Add(time.Minute), 2e9)); err != nil {
		t.Fatal(err)
	}
	if err := Save(dir, measurement("b", t0.Add(2*time.Minute), 3e9)); err != nil {
		t.Fatal(err)
	}
	got, err := Load(Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	want := []detect.PeerMeasurement{measurement("b", t0.Add(2*time.Minute), 3e9), measurement("c", t0.Add(time.Minute), 2e9)}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b detect.Err) bool { return a.Error() == b.Error() })); diff != "" {
		t.Errorf("Load after saves (-want +got):\n%s", diff)
	}
	for i := range MaxPeers + 5 {
		if err := Save(dir, measurement(fmt.Sprintf("n%02d", i), t0.Add(time.Duration(10+i)*time.Minute), 1e9)); err != nil {
			t.Fatal(err)
		}
	}
	got, err = Load(Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxPeers || got[0].Peer != fmt.Sprintf("n%02d", MaxPeers+4) || got[len(got)-1].Peer != "n05" {
		t.Errorf("after %d saves: %d entries, first %s, last %s; want %d, newest first, the oldest dropped",
			MaxPeers+7, len(got), got[0].Peer, got[len(got)-1].Peer, MaxPeers)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".peers.json.*"))
	for _, l := range left {
		if !strings.HasSuffix(l, ".lock") {
			t.Errorf("temporary file left behind: %s", l)
		}
	}
}

// TestSaveOverDamagedFile: a damaged file or one of another schema is
// started afresh by Save, and reported by Load.
func TestSaveOverDamagedFile(t *testing.T) {
	for _, content := range []string{"{not json", `{"version":2,"peers":[]}`} {
		dir := t.TempDir()
		if err := os.WriteFile(Path(dir), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(Path(dir)); err == nil {
			t.Errorf("Load(%q) read it", content)
		}
		if err := Save(dir, measurement("b", time.Now(), 1e9)); err != nil {
			t.Fatal(err)
		}
		if got, err := Load(Path(dir)); err != nil || len(got) != 1 {
			t.Errorf("after Save over %q: %v, %v", content, got, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"version":2}`, "version 2"},
		{`{"version":1,"peers":[{"peer":""}]}`, "names no peer"},
		{`[]`, "decoding"},
		{strings.Repeat(" ", MaxFileSize+1), "larger than"},
	} {
		_, err := Parse(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%.40q) = %v; want an error with %q", tt.in, err, tt.want)
		}
	}
	if _, err := Parse(strings.NewReader(`{"version":3}`)); !errors.Is(err, ErrVersion) {
		t.Errorf("another version: %v; want ErrVersion", err)
	}
}

// FuzzParse: any input is read or refused with an error, never a panic,
// and what is read holds the bounds.
func FuzzParse(f *testing.F) {
	f.Add(`{"version":1,"peers":[{"peer":"b","address":"10.0.0.2","device":"flannel.1","mtu":1450,"at":"2026-01-02T03:04:05Z","cases":[{"name":"host","direction":"send","bits_per_second":1e9}]}]}`)
	f.Add(`{"version":1,"peers":[]}`)
	f.Add(`{"version":1,"peers":[{"peer":"b","cases":[{"error":"refused"}]}]}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, in string) {
		ms, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		if len(ms) > MaxPeers {
			t.Fatalf("%d entries", len(ms))
		}
		for _, m := range ms {
			if m.Peer == "" || len(m.Cases) > MaxCases {
				t.Fatalf("entry %+v read", m)
			}
		}
	})
}
