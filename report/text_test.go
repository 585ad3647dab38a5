package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

func sample() Document {
	s := &detect.Snapshot{Window: time.Second, Kernel: detect.Kernel{Release: "6.1.0"}}
	res := rules.Result{Findings: []rules.Finding{{
		Rule: "tunnel-tx-checksum-off", Severity: rules.Critical, Subject: "vxlan0",
		Summary: "s", Explanation: strings.Repeat("word ", 60),
		Fix: rules.Fix{Command: "ethtool -K vxlan0 tx-checksum-ip-generic on\nsecond line", Auto: true},
	}}}
	return Build("test", s, res)
}

func TestTextColourOnlyWhenAsked(t *testing.T) {
	var plain, colour bytes.Buffer
	if err := WriteText(&plain, sample(), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteText(&colour, sample(), TextOptions{Color: true}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "\x1b[") {
		t.Error("plain text carries ANSI escapes")
	}
	if !strings.Contains(colour.String(), ansiRed) {
		t.Error("a critical finding is not red in colour mode")
	}
}

func TestTextWrapsAndKeepsCommandsWhole(t *testing.T) {
	var out bytes.Buffer
	if err := WriteText(&out, sample(), TextOptions{Width: 60}); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "word") && len(line) > 60 {
			t.Errorf("explanation line longer than the width: %q", line)
		}
	}
	for _, want := range []string{"fix:      ethtool -K vxlan0 tx-checksum-ip-generic on\n", "            second line\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errFull }

var errFull = bytes.ErrTooLarge

func TestTextReportsWriteErrors(t *testing.T) {
	if err := WriteText(failingWriter{}, sample(), TextOptions{}); err != errFull {
		t.Errorf("WriteText to a failing writer = %v, want %v", err, errFull)
	}
}
