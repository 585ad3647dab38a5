// Package probestest stands in for a node in tests: it reads a fixture
// tree captured from a real node (procfs and sysfs files, `ip -d -j link
// show` output, `ethtool -k DEV` output, kube-proxy's answers) and serves
// it through the probes' seams.
package probestest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/safchain/ethtool"
)

// legacyFeatureNames maps the names `ethtool -k` prints for some features
// to the kernel's names, which the ethtool ioctls use.
var legacyFeatureNames = map[string]string{
	"rx-checksumming":              "rx-checksum",
	"generic-segmentation-offload": "tx-generic-segmentation",
	"generic-receive-offload":      "rx-gro",
	"large-receive-offload":        "rx-lro",
	"rx-vlan-offload":              "rx-vlan-hw-parse",
	"tx-vlan-offload":              "tx-vlan-hw-insert",
	"ntuple-filters":               "rx-ntuple-filter",
	"receive-hashing":              "rx-hashing",
	"rx-gro-hw":                    "rx-gro-hw",
}

// aggregateNames are lines of `ethtool -k` that summarise several
// features and are not features themselves.
var aggregateNames = map[string]bool{
	"tx-checksumming":          true,
	"scatter-gather":           true,
	"tcp-segmentation-offload": true,
}

// ParseEthtoolFeatures parses the output of `ethtool -k DEV` into feature
// states by kernel feature name.
func ParseEthtoolFeatures(text string) (map[string]ethtool.FeatureState, error) {
	out := map[string]ethtool.FeatureState{}
	sc := bufio.NewScanner(strings.NewReader(text))
	line := 0
	for sc.Scan() {
		line++
		raw := sc.Text()
		s := strings.TrimSpace(raw)
		if s == "" || strings.HasPrefix(s, "Features for ") {
			continue
		}
		name, rest, ok := strings.Cut(s, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("ethtool -k line %d: want \"feature: on|off\", got %q", line, s)
		}
		indented := raw != "" && (raw[0] == '\t' || raw[0] == ' ')
		if !indented && aggregateNames[name] {
			continue
		}
		if kernel, ok := legacyFeatureNames[name]; ok {
			name = kernel
		}
		st, err := parseFeatureState(strings.TrimSpace(rest))
		if err != nil {
			return nil, fmt.Errorf("ethtool -k line %d (%s): %w", line, name, err)
		}
		out[name] = st
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading ethtool -k output: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("ethtool -k output has no features")
	}
	return out, nil
}

// parseFeatureState parses "on", "off [fixed]", "off [requested on]" and
// "on [not requested]".
func parseFeatureState(s string) (ethtool.FeatureState, error) {
	value, note, _ := strings.Cut(s, " ")
	var st ethtool.FeatureState
	switch value {
	case "on":
		st.Active = true
	case "off":
	default:
		return st, fmt.Errorf("state %q is neither on nor off", value)
	}
	st.Available, st.Requested = true, st.Active
	switch strings.TrimSpace(note) {
	case "":
	case "[fixed]":
		st.Available = false
	case "[requested on]":
		st.Requested = true
	case "[requested off]", "[not requested]":
		st.Requested = false
	default:
		return st, fmt.Errorf("unknown note %q", note)
	}
	return st, nil
}

// Ethtool serves feature states from ethtool/<dev>.txt files, each the
// output of `ethtool -k DEV`. A device without a file is not supported.
type Ethtool struct{ Dir string }

// FeaturesWithState reads and parses the captured output for dev.
func (e Ethtool) FeaturesWithState(dev string) (map[string]ethtool.FeatureState, error) {
	b, err := os.ReadFile(filepath.Join(e.Dir, dev+".txt"))
	if err != nil {
		return nil, err
	}
	return ParseEthtoolFeatures(string(b))
}

// ParseEthtoolChannels parses the output of `ethtool -l DEV`: a "Pre-set
// maximums:" section and a "Current hardware settings:" section, each with
// RX, TX, Other and Combined counts ("n/a" for none).
func ParseEthtoolChannels(text string) (ethtool.Channels, error) {
	var c ethtool.Channels
	section := ""
	seen := 0
	for line := range strings.Lines(text) {
		s := strings.TrimSpace(line)
		switch {
		case s == "" || strings.HasPrefix(s, "Channel parameters for "):
			continue
		case s == "Pre-set maximums:":
			section = "max"
			continue
		case s == "Current hardware settings:":
			section = "cur"
			continue
		}
		name, value, ok := strings.Cut(s, ":")
		if !ok || section == "" {
			return c, fmt.Errorf("ethtool -l: unexpected line %q", s)
		}
		var n uint32
		if v := strings.TrimSpace(value); v != "n/a" {
			u, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return c, fmt.Errorf("ethtool -l: %s %q is not a count", name, v)
			}
			n = uint32(u)
		}
		fields := map[string][2]*uint32{
			"RX":       {&c.MaxRx, &c.RxCount},
			"TX":       {&c.MaxTx, &c.TxCount},
			"Other":    {&c.MaxOther, &c.OtherCount},
			"Combined": {&c.MaxCombined, &c.CombinedCount},
		}
		f, ok := fields[name]
		if !ok {
			return c, fmt.Errorf("ethtool -l: unknown count %q", name)
		}
		if section == "max" {
			*f[0] = n
		} else {
			*f[1] = n
		}
		seen++
	}
	if seen == 0 {
		return c, fmt.Errorf("ethtool -l output has no counts")
	}
	return c, nil
}

// GetChannels reads and parses ethtool/<dev>.channels.txt, the output of
// `ethtool -l DEV`. A device without a file does not support it.
func (e Ethtool) GetChannels(dev string) (ethtool.Channels, error) {
	b, err := os.ReadFile(filepath.Join(e.Dir, dev+".channels.txt"))
	if err != nil {
		return ethtool.Channels{}, err
	}
	return ParseEthtoolChannels(string(b))
}
