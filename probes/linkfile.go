package probes

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/nodetune/nodetune/detect"
)

// linkSetting is one offload key of a .link file's [Link] section.
type linkSetting struct {
	detect.FeatureSetting
	Line int
	Text string
}

// linkFile is what nodetune reads from a systemd .link file.
type linkFile struct {
	Match    detect.DeviceMatch
	Settings []linkSetting
}

// linkOffloadKeys are the [Link] keys that set ethtool offload features
// (systemd.link(5)).
var linkOffloadKeys = map[string]bool{
	"TransmitChecksumOffload": true, "ReceiveChecksumOffload": true,
	"TCPSegmentationOffload": true, "TCP6SegmentationOffload": true,
	"GenericSegmentationOffload": true, "GenericReceiveOffload": true,
	"GenericReceiveOffloadHardware": true, "LargeReceiveOffload": true,
}

// parseLinkFile reads a systemd .link file: [Section] headers, Key=Value
// lines, # and ; comment lines, a trailing backslash continues a line.
// Written out here rather than with go-systemd's unit parser because the
// owner's fix names the line, which that parser does not keep.
func parseLinkFile(r io.Reader) (linkFile, error) {
	var lf linkFile
	var by []string
	conditions := 0
	err := scanINI(r, func(section, key, value string, line int) {
		switch section {
		case "Match":
			conditions++
			linkMatch(&lf.Match, &by, key, value)
		case "Link":
			if !linkOffloadKeys[key] {
				return
			}
			on, ok := parseSystemdBool(value)
			if !ok {
				return // systemd ignores a value it cannot parse
			}
			lf.Settings = append(lf.Settings, linkSetting{detect.FeatureSetting{Feature: key, On: on}, line, key + "=" + value})
		}
	})
	if err != nil {
		return lf, fmt.Errorf(".link %w", err)
	}
	if conditions == 0 {
		// systemd ignores a .link file with no [Match] conditions (since
		// v246; OriginalName=* is how to match every link).
		lf.Match.Never = true
	}
	lf.Match.By = strings.Join(by, ", ")
	return lf, nil
}

// scanINI reads a systemd-style file: [Section] headers, Key=Value lines,
// # and ; comment lines, a trailing backslash continues a line. It calls
// fn for each key with the line the key starts on. Written out here rather
// than with go-systemd's unit parser because an owner's fix names the
// line, which that parser does not keep.
func scanINI(r io.Reader, fn func(section, key, value string, line int)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxRuleLine)
	section, n, start := "", 0, 0
	var cur strings.Builder
	for sc.Scan() {
		n++
		line := sc.Text()
		if cur.Len() == 0 {
			start = n
			t := strings.TrimSpace(line)
			if t == "" || t[0] == '#' || t[0] == ';' {
				continue
			}
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			if cur.Len() > maxRuleLine {
				return fmt.Errorf("line %d: longer than %d bytes", start, maxRuleLine)
			}
			continue
		}
		cur.WriteString(line)
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if strings.HasPrefix(text, "[") {
			if !strings.HasSuffix(text, "]") {
				return fmt.Errorf("line %d: bad section header %q", start, clip(text))
			}
			section = text[1 : len(text)-1]
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		if !ok {
			return fmt.Errorf("line %d: want Key=Value, got %q", start, clip(text))
		}
		fn(section, strings.TrimSpace(key), strings.TrimSpace(value), start)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	return nil
}

// linkMatch adds one [Match] key to m.
func linkMatch(m *detect.DeviceMatch, by *[]string, key, value string) {
	switch key {
	case "OriginalName", "Kind", "Driver":
		if value == "" {
			return
		}
		*by = append(*by, key+"="+value)
		// A "!" before the list inverts every pattern in it; one before a
		// later pattern inverts that one (systemd's config_parse_match_strv).
		list, inverted := strings.CutPrefix(value, "!")
		for _, p := range strings.Fields(list) {
			neg := inverted || strings.HasPrefix(p, "!")
			p = strings.TrimPrefix(p, "!")
			switch {
			case key != "OriginalName" && neg:
				m.NotKinds = append(m.NotKinds, p)
			case key != "OriginalName":
				m.Kinds = append(m.Kinds, p)
			case neg:
				m.NotNames = append(m.NotNames, p)
			default:
				m.Names = append(m.Names, p)
			}
		}
	default:
		m.Unchecked = append(m.Unchecked, key+"="+value)
	}
}

// parseSystemdBool parses a boolean as systemd does.
func parseSystemdBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "1", "yes", "y", "true", "t", "on":
		return true, true
	case "0", "no", "n", "false", "f", "off":
		return false, true
	}
	return false, false
}

// linkOffloadFile is the OffloadFile for a parsed .link file at hostPath.
// Files without offload keys are kept too: only the first .link file that
// matches a device applies, so they can hide later ones.
func linkOffloadFile(lf linkFile, hostPath string) detect.OffloadFile {
	f := detect.OffloadFile{Kind: detect.FileLinkFile, Path: hostPath, Match: lf.Match, OnlyAction: true}
	for _, s := range lf.Settings {
		f.Settings = append(f.Settings, s.FeatureSetting)
		if f.Line == 0 || s.Feature == "TransmitChecksumOffload" {
			f.Line, f.Text = s.Line, s.Text
		}
	}
	return f
}
