package probes

// isDNS1123Subdomain reports whether s is a valid Kubernetes object name
// of the DNS-1123 subdomain kind (a Node's name is one): at most 253
// characters, dot-separated labels of lower-case letters, digits and
// '-', each starting and ending with a letter or digit. It is the rule of
// apimachinery's validation.IsDNS1123Subdomain, written out so that the
// binary does not link apimachinery for one check.
func isDNS1123Subdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
			continue
		}
		label := s[start:i]
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		start = i + 1
	}
	return true
}
