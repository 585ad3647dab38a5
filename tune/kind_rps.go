package tune

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// CPUMask is a set of CPUs in the form rps_cpus takes and prints:
// comma-separated groups of up to eight hex digits, most significant first,
// as in "3" or "ffffffff,00000001".
type CPUMask struct {
	// words[0] holds CPUs 0-31, words[1] CPUs 32-63, and so on, with no
	// trailing zero words.
	words []uint32
}

// ParseCPUMask parses a CPU mask as rps_cpus prints it.
func ParseCPUMask(s string) (CPUMask, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return CPUMask{}, fmt.Errorf("cpu mask is empty")
	}
	groups := strings.Split(s, ",")
	if len(groups) > 256 {
		return CPUMask{}, fmt.Errorf("cpu mask %.20q...: more than 8192 CPUs", s)
	}
	var m CPUMask
	for i := len(groups) - 1; i >= 0; i-- {
		g := groups[i]
		if g == "" || len(g) > 8 {
			return CPUMask{}, fmt.Errorf("cpu mask %q: group %q is not 1 to 8 hex digits", s, g)
		}
		w, err := strconv.ParseUint(g, 16, 32)
		if err != nil {
			return CPUMask{}, fmt.Errorf("cpu mask %q: group %q is not hex", s, g)
		}
		m.words = append(m.words, uint32(w))
	}
	for len(m.words) > 0 && m.words[len(m.words)-1] == 0 {
		m.words = m.words[:len(m.words)-1]
	}
	return m, nil
}

// Equal reports whether m and o hold the same CPUs.
func (m CPUMask) Equal(o CPUMask) bool { return slices.Equal(m.words, o.words) }

// Empty reports whether m holds no CPU, which turns RPS off.
func (m CPUMask) Empty() bool { return len(m.words) == 0 }

// Highest returns the highest CPU in m, or -1 when m is empty.
func (m CPUMask) Highest() int {
	if m.Empty() {
		return -1
	}
	top := m.words[len(m.words)-1]
	n := 31
	for top&(1<<n) == 0 {
		n--
	}
	return 32*(len(m.words)-1) + n
}

// CPUs returns the CPUs in m, in ascending order.
func (m CPUMask) CPUs() []int {
	var out []int
	for i, w := range m.words {
		for b := range 32 {
			if w&(1<<b) != 0 {
				out = append(out, 32*i+b)
			}
		}
	}
	return out
}

// String formats m as rps_cpus takes it.
func (m CPUMask) String() string {
	if m.Empty() {
		return "0"
	}
	parts := make([]string, len(m.words))
	for i, w := range m.words {
		format := "%08x"
		if i == len(m.words)-1 {
			format = "%x"
		}
		parts[len(m.words)-1-i] = fmt.Sprintf(format, w)
	}
	return strings.Join(parts, ",")
}

// rxQueueName matches a receive queue's sysfs name.
var rxQueueName = regexp.MustCompile(`^rx-[0-9]{1,5}$`)

// splitQueue splits an RPS target "DEV/rx-N" and checks both halves.
func splitQueue(target string) (dev, queue string, err error) {
	dev, queue, ok := strings.Cut(target, "/")
	if !ok || dev == "" || len(dev) > 15 || strings.ContainsAny(dev, "/ ") || dev == "." || dev == ".." || !rxQueueName.MatchString(queue) {
		return "", "", fmt.Errorf("rps target %q is not DEV/rx-N: %w", target, ErrNotAllowed)
	}
	return dev, queue, nil
}

// vetRPS checks an RPS change: a receive queue of an underlay device in s,
// and a mask that names only CPUs the snapshot shows. Those are the ids the
// kernel reports, which need not be 0..n-1 when some CPUs are offline.
func vetRPS(s *detect.Snapshot, c *Change) Refusal {
	dev, queue, err := splitQueue(c.Target)
	if err != nil {
		return refuse(ReasonAllowlist, "%s", err.Error())
	}
	var found *detect.RxQueue
	for _, t := range s.Tunnels.Devices {
		if t.Underlay == nil || t.Underlay.Name != dev {
			continue
		}
		for i := range t.Underlay.RxQueues {
			if t.Underlay.RxQueues[i].Name == queue {
				found = &t.Underlay.RxQueues[i]
			}
		}
	}
	if found == nil {
		return refuse(ReasonAllowlist, "%s is not a receive queue of a tunnel underlay nodetune probed", c.Target)
	}
	c.From = found.RPSCPUs
	m, err := ParseCPUMask(c.To)
	if err != nil {
		return refuse(ReasonBound, "%s", err.Error())
	}
	present := map[int]bool{}
	for _, u := range s.CPU.PerCPU {
		present[u.CPU] = true
	}
	switch {
	case m.Empty():
		return refuse(ReasonBound, "an empty mask turns RPS off; nodetune only spreads receive work")
	case len(present) == 0:
		return refuse(ReasonUnknown, "the node's CPUs are unknown, so the mask cannot be checked")
	}
	for _, cpu := range m.CPUs() {
		if !present[cpu] {
			return refuse(ReasonBound, "mask %s names CPU %d, which the node does not have (it has CPUs %s)", c.To, cpu, cpuList(present))
		}
	}
	return Refusal{}
}

// cpuList renders a set of CPU ids in ascending order, as "0,2,3".
func cpuList(set map[int]bool) string {
	ids := slices.Sorted(maps.Keys(set))
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(id)
	}
	return strings.Join(parts, ",")
}

func (h *Host) rpsPath(k Key) (string, error) {
	dev, queue, err := splitQueue(k.Target)
	if err != nil {
		return "", err
	}
	return filepath.Join(h.SysFS, "class/net", dev, "queues", queue, "rps_cpus"), nil
}

func (h *Host) readRPS(k Key) (Value, error) {
	p, err := h.rpsPath(k)
	if err != nil {
		return Value{}, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return Value{}, classify("reading the RPS mask of "+k.Target, err)
	}
	v := strings.TrimSpace(string(b))
	if _, err := ParseCPUMask(v); err != nil {
		return Value{}, fmt.Errorf("reading the RPS mask of %s: %w", k.Target, err)
	}
	return Value{Set: v, Effective: v}, nil
}

func (h *Host) rpsWritable(k Key) error {
	p, err := h.rpsPath(k)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err != nil {
		return classify("the RPS mask of "+k.Target, err)
	}
	return classify("the RPS mask of "+k.Target+" is not writable here", unix.Access(p, unix.W_OK))
}

func (h *Host) writeRPS(k Key, value string) error {
	p, err := h.rpsPath(k)
	if err != nil {
		return err
	}
	if _, err := ParseCPUMask(value); err != nil {
		return fmt.Errorf("setting the RPS mask of %s: %w", k.Target, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return classify("opening the RPS mask of "+k.Target, err)
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return classify(fmt.Sprintf("setting the RPS mask of %s to %s", k.Target, value), err)
}

// rpsKind is the RPS CPU mask of a receive queue ("DEV/rx-N"), under
// <SysFS>/class/net; values are hex CPU masks.
type rpsKind struct{ h *Host }

func (rpsKind) Name() string                              { return rules.ChangeRPS }
func (rpsKind) Vet(s *detect.Snapshot, c *Change) Refusal { return vetRPS(s, c) }
func (rpsKind) Irreversible() string                      { return "" }
func (rpsKind) PerNetNS() bool                            { return true }
func (rpsKind) Stepwise() bool                            { return false }
func (rpsKind) Command(k Key, value string) string        { return ruleCommand(k, value) }

// Equal compares two masks as CPU sets: "00000003", "3" and "00000000,00000003" are one.
func (rpsKind) Equal(a, b string) bool {
	x, errA := ParseCPUMask(a)
	y, errB := ParseCPUMask(b)
	return errA == nil && errB == nil && x.Equal(y)
}

func (rpsKind) Device(k Key) string {
	dev, _, _ := strings.Cut(k.Target, "/")
	return dev
}

func (rpsKind) OnDevice(k Key, name string) Key {
	_, queue, _ := strings.Cut(k.Target, "/")
	k.Target = name + "/" + queue
	return k
}

func (r rpsKind) Read(ctx context.Context, k Key) (Value, error) {
	h, err := hostOf(r.h)
	if err != nil {
		return Value{}, err
	}
	return h.readRPS(k)
}

func (r rpsKind) Writable(ctx context.Context, k Key) error {
	h, err := hostOf(r.h)
	if err != nil {
		return err
	}
	return h.rpsWritable(k)
}

func (r rpsKind) Write(ctx context.Context, k Key, value string) error {
	h, err := hostOf(r.h)
	if err != nil {
		return err
	}
	return h.writeRPS(k, value)
}
