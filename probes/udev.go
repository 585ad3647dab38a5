package probes

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nodetune/nodetune/detect"
)

// udevKey is one KEY{attr} op "value" of a udev rule.
type udevKey struct {
	Key, Attr, Op, Value string
}

// udevRule is one logical line of a rules file.
type udevRule struct {
	Keys           []udevKey
	Line, LastLine int
	Text           string
}

// maxRuleLine bounds one logical line, continuation lines included.
const maxRuleLine = 64 << 10

// parseUdevRules reads a udev rules file: one rule per line, a trailing
// backslash continues it, # starts a comment line. A line that is not a
// rule is skipped, as udev skips it, and reported in the error, which
// joins one error per bad line.
func parseUdevRules(r io.Reader) ([]udevRule, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxRuleLine)
	var rules []udevRule
	var errs []error
	var cur strings.Builder
	start, n := 0, 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if cur.Len() == 0 {
			start = n
			trimmed := strings.TrimSpace(line)
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\"))
			if cur.Len() > maxRuleLine {
				return rules, fmt.Errorf("udev rules line %d: longer than %d bytes", start, maxRuleLine)
			}
			continue
		}
		cur.WriteString(line)
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		keys, err := parseUdevKeys(text)
		if err != nil {
			errs = append(errs, &udevLineError{Line: start, Text: text, Err: err})
			continue
		}
		rules = append(rules, udevRule{Keys: keys, Line: start, LastLine: n, Text: text})
	}
	if err := sc.Err(); err != nil {
		return rules, fmt.Errorf("reading udev rules: %w", err)
	}
	if cur.Len() > 0 {
		errs = append(errs, &udevLineError{Line: start, Text: cur.String(), Err: errors.New("ends in a backslash at the end of the file")})
	}
	return rules, errors.Join(errs...)
}

// udevLineError is a line of a rules file that is not a rule.
type udevLineError struct {
	Line int
	Text string
	Err  error
}

func (e *udevLineError) Error() string { return fmt.Sprintf("udev rules line %d: %v", e.Line, e.Err) }

func (e *udevLineError) Unwrap() error { return e.Err }

// udevLineErrors returns the bad lines that err, from parseUdevRules,
// reports.
func udevLineErrors(err error) []*udevLineError {
	var out []*udevLineError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if le, ok := e.(*udevLineError); ok {
				out = append(out, le)
			}
		}
	}
	return out
}

// udevOps are the operators of udev rules, longest first.
var udevOps = []string{"==", "!=", "+=", "-=", ":=", "="}

// parseUdevKeys splits one rule into its keys.
func parseUdevKeys(s string) ([]udevKey, error) {
	var keys []udevKey
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			break
		}
		i := strings.IndexAny(s, "=!+-:{")
		if i <= 0 {
			return nil, fmt.Errorf("want KEY op \"value\" at %q", clip(s))
		}
		k := udevKey{Key: strings.TrimSpace(s[:i])}
		s = s[i:]
		if s[0] == '{' {
			end := strings.IndexByte(s, '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed { after %s", k.Key)
			}
			k.Attr, s = s[1:end], s[end+1:]
		}
		s = strings.TrimLeft(s, " \t")
		for _, op := range udevOps {
			if strings.HasPrefix(s, op) {
				k.Op, s = op, s[len(op):]
				break
			}
		}
		if k.Op == "" || strings.ContainsAny(k.Key, " \t\"") {
			return nil, fmt.Errorf("key %q has no operator", k.Key)
		}
		s = strings.TrimLeft(s, " \t")
		s = strings.TrimPrefix(s, "e") // e"..." takes C escapes; the value is read alike
		if !strings.HasPrefix(s, `"`) {
			return nil, fmt.Errorf("value of %s is not in double quotes", k.Key)
		}
		val, rest, err := udevQuoted(s[1:])
		if err != nil {
			return nil, fmt.Errorf("value of %s: %w", k.Key, err)
		}
		k.Value, s = val, rest
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	return keys, nil
}

// udevQuoted reads a value up to its closing quote; \" does not close it.
func udevQuoted(s string) (val, rest string, err error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\'):
			b.WriteByte(s[i+1])
			i++
		case s[i] == '"':
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", errors.New("no closing quote")
}

// clip quotes at most 40 bytes of a line that could not be parsed.
func clip(s string) string { return detect.Truncate(s, 40) }

// udevEventDevice reports whether an ethtool device argument in a RUN key
// stands for the device of the event (udev substitutes %k, $kernel, $name
// and %E{INTERFACE} before running the program).
func udevEventDevice(dev string) bool { return strings.ContainsAny(dev, "$%?") }

// udevNameKey reports whether key names the network interface.
func udevNameKey(k udevKey) bool {
	return k.Key == "KERNEL" || k.Key == "NAME" || (k.Key == "ENV" && k.Attr == "INTERFACE")
}

func (k udevKey) String() string {
	key := k.Key
	if k.Attr != "" {
		key += "{" + k.Attr + "}"
	}
	return fmt.Sprintf("%s%s%q", key, k.Op, k.Value)
}

// udevOffloadFiles returns one OffloadFile for each ethtool offload call
// that rule runs, as found in the file at hostPath.
func udevOffloadFiles(rule udevRule, hostPath string, read scriptReader) []detect.OffloadFile {
	var m detect.DeviceMatch
	var by []string
	actions := 0
	var calls []ethtoolOffload
	for _, k := range rule.Keys {
		match := k.Op == "==" || k.Op == "!="
		switch {
		case !match && k.Key == "RUN" && k.Attr != "builtin":
			actions++
			calls = append(calls, commandOffload(splitUdevProgram(k.Value), read)...)
		case !match:
			if k.Key != "GOTO" && k.Key != "LABEL" {
				actions++
			}
		case udevNameKey(k) && k.Op == "==":
			if len(m.Names) > 0 {
				m.Unchecked = append(m.Unchecked, k.String())
				continue
			}
			m.Names = []string{k.Value}
			by = append(by, k.String())
		case udevNameKey(k):
			m.NotNames = append(m.NotNames, k.Value)
			by = append(by, k.String())
		case k.Key == "ENV" && k.Attr == "ID_NET_DRIVER" && k.Op == "==":
			// net_setup_link sets it from ethtool's driver name, which is
			// the link kind for tunnels (vxlan, geneve, ipip).
			m.Kinds = append(m.Kinds, k.Value)
			by = append(by, k.String())
		case k.Key == "SUBSYSTEM" || k.Key == "SUBSYSTEMS":
			if globAny(k.Value, "net") != (k.Op == "==") {
				m.Never = true
			}
		case k.Key == "ACTION" && k.Op == "==":
			// The rule re-applies the setting when the link is added (or
			// re-triggered as "change" or "move").
			if !globAny(k.Value, "add") && !globAny(k.Value, "change") && !globAny(k.Value, "move") {
				m.Never = true
			}
		default:
			m.Unchecked = append(m.Unchecked, k.String())
		}
	}
	m.By = strings.Join(by, ", ")
	var out []detect.OffloadFile
	for _, c := range calls {
		cm := m
		if !udevEventDevice(c.Device) {
			cm.Names, cm.NotNames, cm.By = []string{c.Device}, nil, "its ethtool command's device "+c.Device
		}
		text := rule.Text
		if strings.HasPrefix(c.Text, "/") && !strings.Contains(rule.Text, c.Text) {
			text += " (" + c.Text + ")" // a call in the script the rule runs
		}
		out = append(out, detect.OffloadFile{
			Kind: detect.FileUdevRule, Path: hostPath, Line: rule.Line, LastLine: rule.LastLine,
			Text: text, Match: cm, Settings: c.Settings, OnlyAction: actions == 1 && len(calls) == 1,
		})
	}
	return out
}

// globAny reports whether udev pattern p (with | alternatives) matches s.
func globAny(p, s string) bool { return detect.GlobMatch(p, s) }
