package probes

import (
	"bytes"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// scriptReader reads a script a rule or unit runs, by its path on the
// node, within bounds; nil reads nothing.
type scriptReader func(hostPath string) ([]byte, error)

// commandOffload finds ethtool offload calls in a command line: the
// program itself, a script given to sh -c, or a script file it runs,
// read through read. A "$N" device in a script file is its Nth argument
// when that is given.
func commandOffload(words []string, read scriptReader) []ethtoolOffload {
	if len(words) == 0 {
		return nil
	}
	if e, ok := parseEthtoolOffload(words); ok {
		e.Text = strings.Join(words, " ")
		return []ethtoolOffload{e}
	}
	switch path.Base(words[0]) {
	case "sh", "bash", "dash":
		for i := 1; i+1 < len(words); i++ {
			if words[i] == "-c" {
				sc, err := scanShell(strings.NewReader(words[i+1]), "-c")
				if err != nil {
					return nil
				}
				return sc.calls
			}
		}
		if len(words) > 1 && strings.HasPrefix(words[1], "/") {
			words = words[1:] // sh /path/to/script args
		} else {
			return nil
		}
	}
	if read == nil || !strings.HasPrefix(words[0], "/") {
		return nil
	}
	b, err := read(words[0])
	if err != nil || !bytes.HasPrefix(b, []byte("#!")) || !bytes.Contains(b, []byte("ethtool")) {
		return nil // a program, not a script, or one that runs no ethtool
	}
	sc, err := scanShell(bytes.NewReader(b), words[0])
	if err != nil {
		return nil
	}
	var out []ethtoolOffload
	for _, c := range sc.calls {
		if v, ok := strings.CutPrefix(c.Device, "$"); ok {
			if lit, ok := sc.vars[v]; ok {
				c.Device = lit
			} else if n, err := strconv.Atoi(v); err == nil && n >= 1 && n < len(words) {
				c.Device = words[n]
			}
		}
		c.Text = fmt.Sprintf("%s line %d: %s", words[0], c.Line, c.Text)
		out = append(out, c)
	}
	return out
}

// splitUdevProgram splits a RUN value into words as udev does: on blanks,
// with single or double quotes around words that contain blanks.
func splitUdevProgram(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
