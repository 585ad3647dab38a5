package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
	"github.com/nodetune/nodetune/tune"
)

// asVersion1 rewrites the header of the journal at path to say format
// version 1, as a nodetune before device identities wrote it, with its
// checksum.
func asVersion1(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first, rest, _ := bytes.Cut(b, []byte("\n"))
	var l struct {
		CRC string          `json:"crc"`
		Rec json.RawMessage `json:"rec"`
	}
	if err := json.Unmarshal(first, &l); err != nil {
		t.Fatal(err)
	}
	rec := headerVersion.ReplaceAll(l.Rec, []byte(`"version":1`))
	l.CRC = fmt.Sprintf("%08x", crc32.Checksum(rec, crc32.MakeTable(crc32.Castagnoli)))
	l.Rec = rec
	hdr, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	v1 := append(append(hdr, '\n'), rest...)
	if err := os.WriteFile(path, v1, 0o600); err != nil {
		t.Fatal(err)
	}
	return v1
}

// headerVersion is the version field of the journal's header.
var headerVersion = regexp.MustCompile(`"version":[0-9]+`)

// TestKillDuringJournalRewrite kills rollback while it migrates a version 1
// journal (the same atomic rewrite compaction uses): before the rename,
// the journal is exactly the old file; after it, the new one. Either way a
// dry run reads it, and the next rollback puts every feature back.
func TestKillDuringJournalRewrite(t *testing.T) {
	b := testbedtest.New(t, testbed.Options{})
	a := b.A
	setFeatures(t, a, map[string]bool{detect.FeatureTxChecksumGeneric: false})
	before := features(t, a, a.Tunnel)
	for _, step := range []string{"rewrite:1", "renamed:1"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tune.JournalFile)
			expectCode(t, nodetuneIn(t, a.NS, nil, nil, fixArgs(dir)...), exitOK, "fix")
			v1 := asVersion1(t, path)
			r := nodetuneIn(t, a.NS, []string{tune.CrashEnv + "=" + step}, nil, rollbackArgs(dir)...)
			if !r.killed {
				t.Fatalf("rollback was not killed at %s: exit %d\n%s", step, r.code, r.out)
			}
			now, _ := os.ReadFile(path)
			switch step {
			case "rewrite:1":
				if !bytes.Equal(now, v1) {
					t.Errorf("killed before the rename, the journal changed")
				}
			default:
				if first, _, _ := bytes.Cut(now, []byte("\n")); bytes.Equal(now, v1) || !headerVersion.Match(first) || bytes.Contains(first, []byte(`"version":1`)) {
					t.Errorf("killed after the rename, the journal is not the migrated one:\n%s", now)
				}
			}
			r = nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir, "--dry-run")...)
			expectCode(t, r, exitIncomplete, "rollback --dry-run")
			if !strings.Contains(r.out, "ethtool -K vxlan0 tx-checksum-ip-generic off") {
				t.Errorf("the dry run does not read the journal:\n%s", r.out)
			}
			expectCode(t, nodetuneIn(t, a.NS, nil, nil, rollbackArgs(dir)...), exitOK, "rollback")
			if diff := cmp.Diff(before, features(t, a, a.Tunnel)); diff != "" {
				t.Errorf("features after rollback (-before +after):\n%s", diff)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}
