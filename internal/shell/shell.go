// Package shell renders the commands nodetune prints for people to run,
// and the names it prints on a terminal, so that neither can be turned
// against the reader: every argument is quoted for a POSIX shell, and no
// control character reaches the terminal raw.
//
// Device names come from the kernel, which accepts almost any byte in
// them (not '/', ':', whitespace or NUL): `x$(id)`, `v;id` and names
// holding ESC or bytes that are not UTF-8 are all valid links.
package shell

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// safe reports whether b needs no quoting in a POSIX shell word.
func safe(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("@%+=:,./_-", b) >= 0
}

// printable reports whether s is valid UTF-8 with no control or other
// non-printing character, so it may be shown on a terminal as it is.
func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			return false
		}
	}
	return utf8.ValidString(s)
}

// Quote renders arg as one word for a POSIX shell (sh, dash, bash) that
// also shows safely on a terminal:
//   - a word of letters, digits and @%+=:,./_- stays as it is;
//   - other printable text goes in single quotes, each ' as '\”;
//   - text with a control character, or bytes that are not UTF-8, becomes
//     "$(printf '\ooo...')", every byte outside the plain set written as
//     an octal escape, so the terminal sees only ASCII and the shell gets
//     the exact bytes back. Command substitution drops trailing newlines,
//     which no device name, sysctl key or value nodetune prints can hold.
func Quote(arg string) string {
	if arg == "" {
		return "''"
	}
	plain := true
	for i := 0; i < len(arg); i++ {
		if !safe(arg[i]) {
			plain = false
			break
		}
	}
	switch {
	case plain:
		return arg
	case printable(arg):
		return "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
	}
	var b strings.Builder
	b.WriteString(`"$(printf '`)
	for i := 0; i < len(arg); i++ {
		c := arg[i]
		if safe(c) && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteString(`\` + strconv.FormatUint(uint64(c)|0o1000, 8)[1:])
	}
	b.WriteString(`')"`)
	return b.String()
}

// Join quotes each argument and joins them with spaces: one command line.
func Join(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}

// Escape renders s for a terminal or a log line: printable text as it is,
// and each control character, non-printing character or byte that is not
// UTF-8 as a Go escape (\x1b, \u202e, \xff). A backslash is doubled only
// when something else was escaped, so plain names read as they are.
func Escape(s string) string {
	if printable(s) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
