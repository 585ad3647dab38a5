package detect

import (
	"fmt"
	"strconv"
	"strings"
)

// KubeVersion is a Kubernetes component's version, as kubernetes_build_info
// reports it in gitVersion ("v1.30.4", "v1.29.3-eks-adc7111").
type KubeVersion struct {
	Major int `json:"major"`
	Minor int `json:"minor"`
	// Git is the gitVersion as reported; empty when the version is unknown.
	Git string `json:"git_version,omitempty"`
}

// Known reports whether the version was read.
func (v KubeVersion) Known() bool { return v.Git != "" }

// AtLeast reports whether v is major.minor or later. An unknown version is
// at least nothing: callers must check Known first and say so.
func (v KubeVersion) AtLeast(major, minor int) bool {
	if !v.Known() {
		return false
	}
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// String is the version as reported, or "unknown".
func (v KubeVersion) String() string {
	if !v.Known() {
		return "unknown"
	}
	return v.Git
}

// ParseKubeVersion parses a gitVersion such as "v1.30.4" or
// "v1.29.3-eks-adc7111" (the "v" is optional).
func ParseKubeVersion(git string) (KubeVersion, error) {
	s := strings.TrimPrefix(strings.TrimSpace(git), "v")
	majorText, rest, ok := strings.Cut(s, ".")
	if !ok {
		return KubeVersion{}, fmt.Errorf("kubernetes version %q: want vMAJOR.MINOR", Truncate(git, 40))
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	major, err1 := strconv.Atoi(majorText)
	minor, err2 := strconv.Atoi(rest[:end])
	if err1 != nil || err2 != nil || major < 0 || minor < 0 || major > 1000 || minor > 1000 {
		return KubeVersion{}, fmt.Errorf("kubernetes version %q: want vMAJOR.MINOR", Truncate(git, 40))
	}
	return KubeVersion{Major: major, Minor: minor, Git: strings.TrimSpace(git)}, nil
}

// Truncate shortens s to its first n bytes and "..." for an error message
// that quotes input nodetune could not parse.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// KubeProxyConfig is the part of kube-proxy's running configuration
// (its /configz answer) that nodetune reasons about.
type KubeProxyConfig struct {
	// Mode is the configured proxy mode; "" means the platform default.
	Mode string `json:"mode,omitempty"`
	// IPVSScheduler is the IPVS scheduler; "" means rr.
	IPVSScheduler string `json:"ipvs_scheduler,omitempty"`
	// ConntrackMaxPerCore and ConntrackMin are what kube-proxy computes
	// nf_conntrack_max from; nil when not set (0 means leave it alone).
	ConntrackMaxPerCore *int32 `json:"conntrack_max_per_core,omitempty"`
	ConntrackMin        *int32 `json:"conntrack_min,omitempty"`
}

// Scheduler is the IPVS scheduler kube-proxy uses, rr when unset.
func (c KubeProxyConfig) Scheduler() string {
	if c.IPVSScheduler == "" {
		return "rr"
	}
	return c.IPVSScheduler
}

// IPVSModulesFrom is the first kube-proxy release that no longer checks
// the ip_vs modules at start: the kernel loads ip_vs_<scheduler> when the
// first virtual server asks for it (kubernetes PRs 114669, 114878).
var IPVSModulesFrom = KubeVersion{Major: 1, Minor: 27, Git: "v1.27.0"}

// IPVSDeprecatedFrom is the release that deprecated IPVS mode
// (kubernetes issue 134539, KEP 5525).
var IPVSDeprecatedFrom = KubeVersion{Major: 1, Minor: 35, Git: "v1.35.0"}

// ConntrackNoLowerFrom is the first kube-proxy release that no longer
// lowers a larger nf_conntrack_max at start (kubernetes PR 142035).
var ConntrackNoLowerFrom = KubeVersion{Major: 1, Minor: 36, Git: "v1.36.0"}
