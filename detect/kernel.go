package detect

import (
	"fmt"
	"strconv"
	"strings"
)

// Kernel is what the node says about its running kernel.
type Kernel struct {
	// Release is the raw release string, as uname -r prints it.
	Release string `json:"release"`
	// Version is Release parsed; zero when Err is set.
	Version Version `json:"version"`
	Err     Err     `json:"error,omitzero"`
}

// Version is a kernel version: the upstream numbers and whatever a
// distribution appended after them.
type Version struct {
	Major int `json:"major"`
	Minor int `json:"minor"`
	Patch int `json:"patch"`
	// Suffix is everything after the numbers, such as "-150-generic".
	Suffix string `json:"suffix,omitempty"`
}

// String formats the version as a release string would.
func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d%s", v.Major, v.Minor, v.Patch, v.Suffix)
}

// Less reports whether v's upstream numbers come before o's.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Patch < o.Patch
}

// Distribution reports whether the release looks like a distribution
// package (Debian, Ubuntu, RHEL and their kin): the numbers are followed by
// a package revision that starts with a digit, as in "5.4.0-150-generic",
// "4.18.0-553.el8_10.x86_64" or "6.1.0-28-cloud-amd64". The patch level of
// such a release does not tell which upstream fixes it carries.
func (v Version) Distribution() bool {
	return len(v.Suffix) > 1 && v.Suffix[0] == '-' && v.Suffix[1] >= '0' && v.Suffix[1] <= '9'
}

// ParseRelease parses a kernel release string such as "6.1.0-28-cloud-amd64"
// or "5.10" into a Version.
func ParseRelease(release string) (Version, error) {
	s := strings.TrimSpace(release)
	if s == "" {
		return Version{}, fmt.Errorf("kernel release is empty")
	}
	var nums [3]int
	n := 0
	i := 0
	for n < 3 {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i {
			break
		}
		v, err := strconv.Atoi(s[i:j])
		if err != nil || v > 1<<20 {
			return Version{}, fmt.Errorf("kernel release %q: number out of range", release)
		}
		nums[n] = v
		n++
		i = j
		if n < 3 && i < len(s) && s[i] == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			i++
			continue
		}
		break
	}
	if n < 2 {
		return Version{}, fmt.Errorf("kernel release %q: want MAJOR.MINOR at the start", release)
	}
	return Version{Major: nums[0], Minor: nums[1], Patch: nums[2], Suffix: s[i:]}, nil
}

// FixStatus says whether a kernel carries a given fix.
type FixStatus string

// The answers a kernel version can give about a fix.
const (
	FixPresent FixStatus = "present"
	FixMissing FixStatus = "missing"
	// FixUnknown means the version alone cannot tell: a distribution kernel
	// older than the fix's mainline release may or may not carry a backport.
	FixUnknown FixStatus = "unknown"
)

// natChecksumMainline is the first mainline release with "netfilter: nat:
// never update the UDP checksum when it's 0" (commit ea64d8d6c675).
var natChecksumMainline = Version{Major: 5, Minor: 7}

// natChecksumBackports are the stable releases that took the fix, by series.
var natChecksumBackports = map[[2]int]int{
	{5, 6}:  13,
	{5, 4}:  41,
	{4, 19}: 123,
	{4, 14}: 181,
}

// NATChecksumFix reports whether this kernel carries the fix for the NAT
// rewrite of a zero UDP checksum on VXLAN packets, without which tx checksum
// offload on a tunnel device corrupts the outer checksum.
//
// A distribution kernel (see Distribution) whose patch level already
// reaches a stable backport, such as Amazon Linux's "5.4.247-162.amzn2",
// has the fix; one below it may carry the distribution's own backport, so
// its answer is unknown. A 5.7 release candidate is unknown too: the fix
// went in during the 5.7 cycle, after the first candidates.
func (v Version) NATChecksumFix() FixStatus {
	if !v.Less(natChecksumMainline) {
		if v.Major == natChecksumMainline.Major && v.Minor == natChecksumMainline.Minor && v.Patch == 0 && strings.HasPrefix(v.Suffix, "-rc") {
			return FixUnknown
		}
		return FixPresent
	}
	if first, ok := natChecksumBackports[[2]int{v.Major, v.Minor}]; ok && v.Patch >= first {
		return FixPresent
	}
	if v.Distribution() {
		return FixUnknown
	}
	return FixMissing
}
