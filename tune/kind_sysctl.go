package tune

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	sysctl "github.com/lorenzosaino/go-sysctl"
	"golang.org/x/sys/unix"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// Sysctl keys tune may write.
const (
	SysctlConntrackMax = "net.netfilter.nf_conntrack_max"
	SysctlMaxBacklog   = "net.core.netdev_max_backlog"
	SysctlBudget       = "net.core.netdev_budget"
)

// sysctlBounds returns the value s shows for key, and the most nodetune
// may ever set it to; ok is false for a key off the allowlist.
func sysctlBounds(s *detect.Snapshot, key string) (cur, limit int64, why string, ok bool) {
	switch key {
	case SysctlConntrackMax:
		switch {
		case s.Conntrack.Err.Failed():
			return 0, 0, "conntrack could not be read: " + s.Conntrack.Err.Error(), true
		case s.Memory.Err.Failed():
			return 0, 0, "the memory size could not be read, so the new size cannot be bounded: " + s.Memory.Err.Error(), true
		}
		return s.Conntrack.Max, rules.ConntrackMaxCap(s.Memory.TotalBytes), "", true
	case SysctlMaxBacklog:
		return s.Softnet.MaxBacklog, rules.MaxBacklogCap, "", true
	case SysctlBudget:
		return s.Softnet.Budget, rules.BudgetCap, "", true
	}
	return 0, 0, "", false
}

// vetSysctl checks a sysctl change: an allowed key, raised by one bounded
// step (at most double) and never past its cap, and never lowered.
func vetSysctl(s *detect.Snapshot, c *Change) Refusal {
	cur, limit, why, ok := sysctlBounds(s, c.Target)
	if !ok {
		return refuse(ReasonAllowlist, "sysctl %s is not on nodetune's allowlist", c.Target)
	}
	if why != "" {
		return refuse(ReasonUnknown, "%s", why)
	}
	if cur <= 0 {
		return refuse(ReasonUnknown, "the current value of %s is unknown", c.Target)
	}
	c.From = strconv.FormatInt(cur, 10)
	to, err := parseInt(c.To)
	switch {
	case err != nil:
		return refuse(ReasonBound, "%s: %q is not a number", c.Target, c.To)
	case to <= cur:
		return refuse(ReasonBound, "%s is %d; nodetune only ever raises it, and %d is not higher", c.Target, cur, to)
	case to > 2*cur:
		return refuse(ReasonBound, "%s: %d is more than one step (double) above %d", c.Target, to, cur)
	case to > limit:
		return refuse(ReasonBound, "%s: %d is past nodetune's bound of %d for this node", c.Target, to, limit)
	}
	return Refusal{}
}

// parseInt parses one decimal integer, as a sysctl holds it.
func parseInt(s string) (int64, error) { return strconv.ParseInt(strings.TrimSpace(s), 10, 64) }

func (h *Host) sysctlPath(key string) string {
	return filepath.Join(h.ProcFS, "sys", strings.ReplaceAll(key, ".", "/"))
}

func (h *Host) sysctlClient() (*sysctl.Client, error) {
	dir := filepath.Join(h.ProcFS, "sys") + "/"
	c, err := sysctl.NewClient(dir)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w: %w", dir, detect.ErrNotSupported, err)
	}
	return c, nil
}

func validSysctl(key string) error {
	if key != SysctlConntrackMax && key != SysctlMaxBacklog && key != SysctlBudget {
		return fmt.Errorf("sysctl %s: %w", key, ErrNotAllowed)
	}
	return nil
}

func (h *Host) readSysctl(k Key) (Value, error) {
	if err := validSysctl(k.Target); err != nil {
		return Value{}, err
	}
	c, err := h.sysctlClient()
	if err != nil {
		return Value{}, err
	}
	v, err := c.Get(k.Target)
	if err != nil {
		return Value{}, classify("reading sysctl "+k.Target, err)
	}
	if _, err := parseInt(v); err != nil {
		return Value{}, fmt.Errorf("reading sysctl %s: %q is not an integer", k.Target, v)
	}
	return Value{Set: v, Effective: v}, nil
}

// sysctlWritable checks that the key's file exists and that this process
// may write it: access(2) on procfs applies the sysctl's mode even to root,
// and reports a read-only mount.
func (h *Host) sysctlWritable(k Key) error {
	if err := validSysctl(k.Target); err != nil {
		return err
	}
	p := h.sysctlPath(k.Target)
	if _, err := os.Stat(p); err != nil {
		return classify("sysctl "+k.Target, err)
	}
	if err := unix.Access(p, unix.W_OK); err != nil {
		what := "sysctl " + k.Target + " is not writable here"
		if err == syscall.EROFS {
			what = "sysctl " + k.Target + " is on a read-only filesystem"
		}
		return classify(what, err)
	}
	return nil
}

func (h *Host) writeSysctl(k Key, value string) error {
	if err := validSysctl(k.Target); err != nil {
		return err
	}
	if _, err := parseInt(value); err != nil {
		return fmt.Errorf("setting sysctl %s: %q is not an integer", k.Target, value)
	}
	// go-sysctl's Set creates a missing file, which a fixture tree would
	// accept; refuse a key that is not there.
	if _, err := os.Stat(h.sysctlPath(k.Target)); err != nil {
		return classify("setting sysctl "+k.Target, err)
	}
	c, err := h.sysctlClient()
	if err != nil {
		return err
	}
	return classify(fmt.Sprintf("setting sysctl %s=%s", k.Target, value), c.Set(k.Target, value))
}

// sysctlKind is a sysctl under <ProcFS>/sys, raised one bounded step at a
// time; values are decimal integers.
type sysctlKind struct{ h *Host }

func (sysctlKind) Name() string                              { return rules.ChangeSysctl }
func (sysctlKind) Vet(s *detect.Snapshot, c *Change) Refusal { return vetSysctl(s, c) }
func (sysctlKind) Irreversible() string                      { return "" }
func (sysctlKind) PerNetNS() bool                            { return true }
func (sysctlKind) Stepwise() bool                            { return true }
func (sysctlKind) Command(k Key, value string) string        { return ruleCommand(k, value) }

// Equal compares two sysctl values as numbers: "1" and "1\n" are one.
func (sysctlKind) Equal(a, b string) bool {
	x, errA := parseInt(a)
	y, errB := parseInt(b)
	return errA == nil && errB == nil && x == y
}

func (s sysctlKind) Read(ctx context.Context, k Key) (Value, error) {
	h, err := hostOf(s.h)
	if err != nil {
		return Value{}, err
	}
	return h.readSysctl(k)
}

func (s sysctlKind) Writable(ctx context.Context, k Key) error {
	h, err := hostOf(s.h)
	if err != nil {
		return err
	}
	return h.sysctlWritable(k)
}

func (s sysctlKind) Write(ctx context.Context, k Key, value string) error {
	h, err := hostOf(s.h)
	if err != nil {
		return err
	}
	return h.writeSysctl(k, value)
}
