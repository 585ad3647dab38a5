package deploy_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nodetune/nodetune/kube/kubetest"
)

// creds are a process's credentials as the kernel reports them in
// /proc/PID/status.
type creds struct {
	UID, GID                       int // real
	EUID, EGID                     int // effective
	CapPrm, CapEff, CapBnd, CapAmb uint64
	NoNewPrivs                     bool
	// Seccomp is the seccomp mode: 0 off, 1 strict, 2 filter.
	Seccomp int
}

// errStatus is returned for /proc/PID/status text that lacks a field or
// carries a malformed one.
var errStatus = errors.New("malformed /proc/PID/status")

// parseStatus reads the credential fields of /proc/PID/status.
func parseStatus(r io.Reader) (creds, error) {
	var c creds
	seen := map[string]bool{}
	s := bufio.NewScanner(r)
	for s.Scan() {
		key, val, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		var err error
		switch key {
		case "Uid", "Gid":
			if len(f) != 4 {
				return c, fmt.Errorf("%w: %s has %d ids, want 4", errStatus, key, len(f))
			}
			ids := make([]int, 2)
			for i := range ids {
				if ids[i], err = strconv.Atoi(f[i]); err != nil {
					return c, fmt.Errorf("%w: %s: %w", errStatus, key, err)
				}
			}
			if key == "Uid" {
				c.UID, c.EUID = ids[0], ids[1]
			} else {
				c.GID, c.EGID = ids[0], ids[1]
			}
		case "CapPrm", "CapEff", "CapBnd", "CapAmb":
			if len(f) != 1 {
				return c, fmt.Errorf("%w: %s: %q", errStatus, key, val)
			}
			v, err := strconv.ParseUint(f[0], 16, 64)
			if err != nil {
				return c, fmt.Errorf("%w: %s: %w", errStatus, key, err)
			}
			*map[string]*uint64{"CapPrm": &c.CapPrm, "CapEff": &c.CapEff, "CapBnd": &c.CapBnd, "CapAmb": &c.CapAmb}[key] = v
		case "NoNewPrivs", "Seccomp":
			if len(f) != 1 {
				return c, fmt.Errorf("%w: %s: %q", errStatus, key, val)
			}
			v, err := strconv.Atoi(f[0])
			if err != nil {
				return c, fmt.Errorf("%w: %s: %w", errStatus, key, err)
			}
			if key == "NoNewPrivs" {
				c.NoNewPrivs = v == 1
			} else {
				c.Seccomp = v
			}
		default:
			continue
		}
		seen[key] = true
	}
	if err := s.Err(); err != nil {
		return c, fmt.Errorf("reading /proc/PID/status: %w", err)
	}
	// NoNewPrivs and Seccomp exist since Linux 4.10 and 3.8.
	for _, k := range []string{"Uid", "Gid", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"} {
		if !seen[k] {
			return c, fmt.Errorf("%w: no %s line", errStatus, k)
		}
	}
	return c, nil
}

// readCreds reads the credentials of process pid from the host.
func readCreds(pid int) (creds, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return creds{}, err
	}
	defer f.Close()
	return parseStatus(f)
}

// promise is what docs/deploy.md promises about the agent's process in
// one mode.
type promise struct {
	uid  int
	caps []string
	// noNewPrivs: allowPrivilegeEscalation false; seccomp: RuntimeDefault
	// (a filter); readOnlyRoot: readOnlyRootFilesystem.
	noNewPrivs, seccomp, readOnlyRoot bool
}

// capBits are the capabilities the manifests may add, by their
// Kubernetes names.
var capBits = map[string]uint{"NET_ADMIN": unix.CAP_NET_ADMIN, "SYS_MODULE": unix.CAP_SYS_MODULE}

// mask is caps as a capability set.
func mask(caps []string) (uint64, error) {
	var m uint64
	for _, c := range caps {
		bit, ok := capBits[c]
		if !ok {
			return 0, fmt.Errorf("capability %s is not one the tests know", c)
		}
		m |= 1 << bit
	}
	return m, nil
}

// docPromises reads the table of docs/deploy.md's "On the node" section
// and returns the promises for observe and remediate, and for remediate
// with the load-modules component, which the prose says adds SYS_MODULE.
func docPromises(t *testing.T) map[string]promise {
	t.Helper()
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(root + "/docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := parsePromises(string(doc))
	if err != nil {
		t.Fatalf("docs/deploy.md: %v", err)
	}
	return ps
}

var (
	backticked = regexp.MustCompile("`([A-Z_]+)`")
	firstInt   = regexp.MustCompile(`^\D*(\d+)`)
)

// parsePromises parses the promises out of docs/deploy.md's text.
func parsePromises(doc string) (map[string]promise, error) {
	_, section, ok := strings.Cut(doc, "### On the node")
	if !ok {
		return nil, errors.New(`no "### On the node" section`)
	}
	rows := map[string][2]string{}
	for line := range strings.SplitSeq(section, "\n") {
		if strings.HasPrefix(line, "#") {
			break
		}
		cells := strings.Split(strings.Trim(line, "| "), "|")
		if !strings.HasPrefix(line, "|") || len(cells) < 3 {
			continue
		}
		rows[strings.Trim(strings.TrimSpace(cells[0]), "`")] = [2]string{strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])}
	}
	ps := map[string]promise{}
	for i, mode := range []string{"observe", "remediate"} {
		var p promise
		for _, k := range []string{"user", "capabilities", "allowPrivilegeEscalation", "seccomp", "readOnlyRootFilesystem"} {
			if _, ok := rows[k]; !ok {
				return nil, fmt.Errorf("the table has no %s row", k)
			}
		}
		m := firstInt.FindStringSubmatch(rows["user"][i])
		if m == nil {
			return nil, fmt.Errorf("%s user %q names no uid", mode, rows["user"][i])
		}
		p.uid, _ = strconv.Atoi(m[1])
		for _, c := range backticked.FindAllStringSubmatch(rows["capabilities"][i], -1) {
			p.caps = append(p.caps, c[1])
		}
		if len(p.caps) == 0 && !strings.HasPrefix(rows["capabilities"][i], "none") {
			return nil, fmt.Errorf("%s capabilities %q are neither none nor named", mode, rows["capabilities"][i])
		}
		p.noNewPrivs = rows["allowPrivilegeEscalation"][i] == "false"
		p.seccomp = rows["seccomp"][i] == "RuntimeDefault"
		p.readOnlyRoot = rows["readOnlyRootFilesystem"][i] == "true"
		ps[mode] = p
	}
	if !strings.Contains(doc, "It adds `SYS_MODULE`") {
		return nil, errors.New("the load-modules component's capability is not documented")
	}
	p := ps["remediate"]
	p.caps = append(slices.Clone(p.caps), "SYS_MODULE")
	ps["remediate-load-modules"] = p
	return ps, nil
}

// check compares c with the promise and returns what differs.
func (p promise) check(c creds) []string {
	var bad []string
	if c.UID != p.uid || c.EUID != p.uid {
		bad = append(bad, fmt.Sprintf("uid %d (effective %d); docs/deploy.md promises %d", c.UID, c.EUID, p.uid))
	}
	want, err := mask(p.caps)
	if err != nil {
		return append(bad, err.Error())
	}
	for _, s := range []struct {
		name string
		got  uint64
	}{{"CapEff", c.CapEff}, {"CapPrm", c.CapPrm}, {"CapBnd", c.CapBnd}} {
		if s.got != want {
			bad = append(bad, fmt.Sprintf("%s %016x; docs/deploy.md promises %016x (%v)", s.name, s.got, want, p.caps))
		}
	}
	if c.CapAmb != 0 {
		bad = append(bad, fmt.Sprintf("CapAmb %016x; want none", c.CapAmb))
	}
	if c.NoNewPrivs != p.noNewPrivs {
		bad = append(bad, fmt.Sprintf("NoNewPrivs %v; want %v", c.NoNewPrivs, p.noNewPrivs))
	}
	if (c.Seccomp == 2) != p.seccomp {
		bad = append(bad, fmt.Sprintf("Seccomp mode %d; want a filter (2): %v", c.Seccomp, p.seccomp))
	}
	return bad
}

// mountOptions returns the per-mount options of each mount point in
// /proc/PID/mountinfo text, by mount point; a later mount on the same
// point hides an earlier one.
func mountOptions(r io.Reader) (map[string][]string, error) {
	m := map[string][]string{}
	s := bufio.NewScanner(r)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) < 6 {
			return nil, fmt.Errorf("malformed mountinfo line %q", s.Text())
		}
		m[unescapeMount(f[4])] = strings.Split(f[5], ",")
	}
	return m, s.Err()
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestParseStatus(t *testing.T) {
	const status = `Name:	nodetune
Umask:	0022
State:	S (sleeping)
Uid:	65534	65534	65534	65534
Gid:	65534	65534	65534	65534
CapInh:	0000000000000000
CapPrm:	0000000000001000
CapEff:	0000000000001000
CapBnd:	0000000000001000
CapAmb:	0000000000000000
NoNewPrivs:	1
Seccomp:	2
Seccomp_filters:	1
`
	got, err := parseStatus(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	want := creds{UID: 65534, GID: 65534, EUID: 65534, EGID: 65534, CapPrm: 1 << 12, CapEff: 1 << 12, CapBnd: 1 << 12, NoNewPrivs: true, Seccomp: 2}
	if got != want {
		t.Errorf("parseStatus = %+v; want %+v", got, want)
	}
	for _, bad := range []string{
		strings.Replace(status, "NoNewPrivs:\t1\n", "", 1),
		strings.Replace(status, "CapEff:\t0000000000001000", "CapEff:\tzz", 1),
		strings.Replace(status, "Uid:\t65534\t65534\t65534\t65534", "Uid:\t65534", 1),
	} {
		if _, err := parseStatus(strings.NewReader(bad)); !errors.Is(err, errStatus) {
			t.Errorf("parseStatus(%q) error %v; want errStatus", bad, err)
		}
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapPrm:\t0\nCapEff:\t0\nCapBnd:\t0\nCapAmb:\t0\nNoNewPrivs:\t0\nSeccomp:\t0\n")
	f.Add("Uid:\t1\nSeccomp:\tx\n")
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := parseStatus(strings.NewReader(s)); err != nil && !errors.Is(err, errStatus) && !strings.Contains(err.Error(), "reading") {
			t.Errorf("error %v does not wrap errStatus", err)
		}
	})
}

func TestParsePromises(t *testing.T) {
	ps := docPromises(t)
	want := map[string]promise{
		"observe":                {uid: 65534, noNewPrivs: true, seccomp: true, readOnlyRoot: true},
		"remediate":              {uid: 0, caps: []string{"NET_ADMIN"}, noNewPrivs: true, seccomp: true, readOnlyRoot: true},
		"remediate-load-modules": {uid: 0, caps: []string{"NET_ADMIN", "SYS_MODULE"}, noNewPrivs: true, seccomp: true, readOnlyRoot: true},
	}
	for name, w := range want {
		g := ps[name]
		if g.uid != w.uid || !slices.Equal(g.caps, w.caps) || g.noNewPrivs != w.noNewPrivs || g.seccomp != w.seccomp || g.readOnlyRoot != w.readOnlyRoot {
			t.Errorf("%s: docs/deploy.md promises %+v; this test expects %+v", name, g, w)
		}
	}
	if _, err := parsePromises("no table here"); err == nil {
		t.Error("parsePromises accepted a document without the table")
	}
}

func TestMountOptions(t *testing.T) {
	const info = `600 500 0:50 / / ro,relatime - overlay overlay rw
601 600 0:5 / /host/proc ro,nosuid - proc proc rw
602 601 0:5 /sys/net /host/proc/sys/net rw,nosuid - proc proc rw
603 600 0:7 / /a\040b rw - tmpfs tmpfs rw
`
	got, err := mountOptions(strings.NewReader(info))
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"/": "ro", "/host/proc": "ro", "/host/proc/sys/net": "rw", "/a b": "rw"} {
		if len(got[p]) == 0 || got[p][0] != want {
			t.Errorf("options of %s = %v; want %s first", p, got[p], want)
		}
	}
}

func FuzzMountOptions(f *testing.F) {
	f.Add("600 500 0:50 / / ro,relatime - overlay overlay rw\n")
	f.Add(`1 2 3 4 /a\040b\ rw`)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = mountOptions(strings.NewReader(s)) // an error is fine, a panic is not
	})
}
