package probes

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestFelixProcesses(t *testing.T) {
	root := t.TempDir()
	for pid, cmdline := range map[string]string{
		"10":   "/usr/bin/calico-node\x00-felix\x00",
		"11":   "/usr/bin/calico-node\x00-confd\x00",
		"12":   "calico-felix\x00",
		"13":   "/bin/sh\x00-c\x00calico-node -felix\x00",
		"self": "x\x00",
	} {
		if err := os.MkdirAll(filepath.Join(root, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "cmdline"), []byte(cmdline), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := FelixProcesses(root)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []int{10, 12}) {
		t.Errorf("FelixProcesses = %v; want [10 12]", got)
	}
	if _, err := FelixProcesses(filepath.Join(root, "missing")); err == nil {
		t.Errorf("a missing procfs is no error")
	}
}

func FuzzIsFelixCmdline(f *testing.F) {
	for _, s := range []string{"", "\x00", "calico-node\x00-felix\x00", "calico-felix", "a\x00\x00b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		IsFelixCmdline(b) // never panics
		if _, err := parseCmdline(b); err != nil && len(b) < 4096 {
			t.Fatalf("parseCmdline(%q): %v", b, err)
		}
	})
}
