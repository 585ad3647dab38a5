package probes

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// dnsNameCases are names with what apimachinery says of them.
var dnsNameCases = []string{
	"", "a", "node-1", "node-1.example.com", "Node", "-a", "a-", "a..b", ".a", "a.",
	"a_b", "1", "1.2.3.4", "a.-b", "a.b-", "ä", "a b", strings.Repeat("a", 63),
	strings.Repeat("a", 64), strings.Repeat("a.", 126) + "a", strings.Repeat("a.", 126) + "ab",
}

// TestIsDNS1123Subdomain checks the check against apimachinery's (which
// the tests may link; the binary does not).
func TestIsDNS1123Subdomain(t *testing.T) {
	for _, s := range dnsNameCases {
		want := len(validation.IsDNS1123Subdomain(s)) == 0
		if got := isDNS1123Subdomain(s); got != want {
			t.Errorf("isDNS1123Subdomain(%q) = %v, want %v", s, got, want)
		}
	}
}

// FuzzIsDNS1123Subdomain: the check agrees with apimachinery's on any
// input.
func FuzzIsDNS1123Subdomain(f *testing.F) {
	for _, s := range dnsNameCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(validation.IsDNS1123Subdomain(s)) == 0
		if got := isDNS1123Subdomain(s); got != want {
			t.Errorf("isDNS1123Subdomain(%q) = %v, want %v", s, got, want)
		}
	})
}
