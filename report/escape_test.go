package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// TestTextEscapesControlCharacters: a device name is any bytes the kernel
// accepts, ESC included. The text report shows it escaped, never raw, so a
// name cannot repaint or clear the reader's terminal.
func TestTextEscapesControlCharacters(t *testing.T) {
	name := "v\x1b[2J\xff"
	s := &detect.Snapshot{Window: time.Second, Kernel: detect.Kernel{Release: "6.1.0"},
		Tunnels: detect.Tunnels{Devices: []detect.Tunnel{{Name: name, Kind: detect.KindVXLAN, MTU: 1450}}}}
	res := rules.Result{
		Findings: []rules.Finding{{
			Rule: "tunnel-tx-checksum-off", Severity: rules.Critical, Subject: name,
			Summary: "tx checksum offload is off on " + name, Explanation: "on " + name,
			Evidence: []rules.Evidence{{Name: "device", Value: name}},
			Fix:      rules.Fix{Command: rules.Change{Kind: rules.ChangeFeature, Target: name, Setting: detect.FeatureTxChecksumGeneric, Value: "on"}.Command(), Auto: true},
		}},
		Unchecked: []rules.Unchecked{{Rule: "tunnel-mtu", Subject: name, Reason: "no " + name}},
	}
	var out bytes.Buffer
	if err := WriteText(&out, Build("test", s, res), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.String(), "\x1b\xff") {
		t.Errorf("the report carries the name's raw bytes:\n%q", out.String())
	}
	for _, want := range []string{`v\x1b[2J\xff vxlan`, `critical`, `tunnel-tx-checksum-off  v\x1b[2J\xff`, `ethtool -K "$(printf`, `tunnel-mtu (v\x1b[2J\xff): no`} {
		if !strings.Contains(strings.ToLower(out.String()), strings.ToLower(want)) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
}
