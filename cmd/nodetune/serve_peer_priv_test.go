package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/peerstate"
	"github.com/nodetune/nodetune/report"
	"github.com/nodetune/nodetune/rules"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// TestServeUsesPeerMeasurements runs serve on a real VXLAN device whose tx
// checksum offload is off, with a peer measurement in its state directory,
// as the peer schedule saves it:
//   - offload on measured slower than off on this device: serve raises
//     tunnel-offload-hurts, not tunnel-tx-checksum-off, and exports the
//     measurement;
//   - a new measurement that finds offload helping, saved while serve
//     runs: the next cycle raises tunnel-tx-checksum-off quoting the loss
//     measured on this node pair.
func TestServeUsesPeerMeasurements(t *testing.T) {
	privtest.Root(t)
	bin := nodetuneBinary(t)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntp"})
	side := bed.A
	if err := side.SetFeatures(side.Tunnel, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		t.Fatal(err)
	}
	link, err := side.Netlink().LinkByName(side.Tunnel)
	if err != nil {
		t.Fatal(err)
	}
	mtu := link.Attrs().MTU
	state := t.TempDir()
	save := func(on, off float64) {
		t.Helper()
		if err := peerstate.Save(state, detect.PeerMeasurement{
			Peer: "node-b", Address: "10.0.0.2", Device: side.Tunnel, MTU: mtu, At: time.Now(),
			Cases: []detect.PeerCase{
				{Name: detect.PeerCaseOffloadOn, Direction: detect.PeerSend, BitsPerSecond: on},
				{Name: detect.PeerCaseOffloadOff, Direction: detect.PeerSend, BitsPerSecond: off},
			},
		}); err != nil {
			t.Fatal(err)
		}
	}
	save(2e8, 9e9)
	const addr = "127.0.0.1:9752"
	serve := startIn(t, side.NS, bin, "serve", "--web.listen-address="+addr, "--state-dir="+state,
		"--probe.interval=1s", "--probe.window=200ms", "--kube-proxy.url=", "--log.level=debug")
	client := nsClient(side)
	findings := func() ([]rules.Finding, error) {
		body, err := getBody(client, "http://"+addr+"/findings")
		if err != nil {
			return nil, err
		}
		var doc report.Document
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			return nil, err
		}
		return doc.Findings, nil
	}
	eventually(t, 10*time.Second, "tunnel-offload-hurts from the saved measurement", func() error {
		fs, err := findings()
		if err != nil {
			return err
		}
		if hasFinding(fs, rules.TunnelTxChecksumOff, side.Tunnel) {
			return fmt.Errorf("tunnel-tx-checksum-off raised although offload on measured slower: %+v", fs)
		}
		if !hasFinding(fs, rules.TunnelOffloadHurts, side.Tunnel) {
			return fmt.Errorf("no tunnel-offload-hurts: %+v", fs)
		}
		return nil
	})
	body, err := getBody(client, "http://"+addr+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, `nodetune_peer_throughput_bytes_per_second{direction="send",path="tunnel-offload-on",peer="node-b"} 2.5e+07`) {
		t.Errorf("/metrics lacks the peer measurement:\n%s", body)
	}

	save(8e9, 2e9)
	eventually(t, 10*time.Second, "tunnel-tx-checksum-off quoting the new measurement", func() error {
		fs, err := findings()
		if err != nil {
			return err
		}
		for _, f := range fs {
			if f.Rule == rules.TunnelTxChecksumOff && f.Subject == side.Tunnel {
				if !strings.Contains(f.Summary, "measured between this node and node-b: the tunnel loses 75%") {
					return fmt.Errorf("summary %q", f.Summary)
				}
				return nil
			}
		}
		return fmt.Errorf("no tunnel-tx-checksum-off: %+v", fs)
	})
	if err := serve.stop(t); err != nil {
		t.Errorf("serve did not exit cleanly: %v", err)
	}
}
