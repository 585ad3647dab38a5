package shell

import (
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// hostile are arguments a device name or journal can carry.
var hostile = []string{
	"vxlan.calico", "flannel.1", "", "x$(id)", "v;id", "a'b", `a"b`, "a`id`b", "a\\b", "%s%d",
	"\x1b[31mred", "tab\there", "\xff\xfe", "mix\x00ed", "rtl\u202eoverride", "grüße", "$HOME", "*", "~root", "a\nb",
}

func TestQuote(t *testing.T) {
	tests := map[string]string{
		"vxlan.calico":                 "vxlan.calico",
		"net.core.netdev_budget=600":   "net.core.netdev_budget=600",
		"":                             "''",
		"x$(id)":                       "'x$(id)'",
		"v;id":                         "'v;id'",
		"a'b":                          `'a'\''b'`,
		"\x1b[31m":                     `"$(printf '\033\13331m')"`,
		"\xff":                         `"$(printf '\377')"`,
		"100%\x01":                     `"$(printf '100\045\001')"`,
		"/sys/class/net/v;id/rps_cpus": "'/sys/class/net/v;id/rps_cpus'",
	}
	for in, want := range tests {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestQuoteThroughSh runs each quoted argument through sh and checks that
// the shell gets back exactly the bytes, and runs nothing else.
func TestQuoteThroughSh(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for _, arg := range hostile {
		if strings.ContainsRune(arg, 0) || strings.HasSuffix(arg, "\n") {
			continue // no argument can hold NUL; see Quote on trailing newlines
		}
		roundTrip(t, sh, arg)
	}
}

func roundTrip(t *testing.T, sh, arg string) {
	t.Helper()
	out, err := exec.Command(sh, "-c", "printf %s "+Quote(arg)).Output()
	if err != nil {
		t.Fatalf("sh -c 'printf %%s %s': %v", Quote(arg), err)
	}
	if string(out) != arg {
		t.Errorf("sh read %s back as %q, want %q", Quote(arg), out, arg)
	}
}

func TestJoin(t *testing.T) {
	got := Join("ethtool", "-K", "x$(id)", "tx-checksum-ip-generic", "on")
	if want := "ethtool -K 'x$(id)' tx-checksum-ip-generic on"; got != want {
		t.Errorf("Join = %s, want %s", got, want)
	}
}

func TestEscape(t *testing.T) {
	got := make([]string, len(hostile))
	for i, s := range hostile {
		got[i] = Escape(s)
	}
	want := []string{
		"vxlan.calico", "flannel.1", "", "x$(id)", "v;id", "a'b", `a"b`, "a`id`b", `a\b`, "%s%d",
		`\x1b[31mred`, `tab\there`, `\xff\xfe`, `mix\x00ed`, `rtl\u202eoverride`, "grüße", "$HOME", "*", "~root", `a\nb`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Escape (-want +got):\n%s", diff)
	}
}

// terminalSafe reports whether s holds no control character and is UTF-8.
func terminalSafe(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// FuzzQuote: whatever the argument, the quoted word and the escaped text
// are safe on a terminal, and sh reads the word back as the argument.
func FuzzQuote(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	sh, _ := exec.LookPath("sh")
	f.Fuzz(func(t *testing.T, arg string) {
		q, e := Quote(arg), Escape(arg)
		if !terminalSafe(q) || !terminalSafe(e) {
			t.Fatalf("Quote(%q) = %q, Escape = %q: not safe on a terminal", arg, q, e)
		}
		if sh != "" && !strings.ContainsRune(arg, 0) && !strings.HasSuffix(arg, "\n") {
			roundTrip(t, sh, arg)
		}
	})
}
