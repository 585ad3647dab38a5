package probes

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	sysctl "github.com/lorenzosaino/go-sysctl"

	"github.com/nodetune/nodetune/detect"
)

// Sysctl reads one integer sysctl, such as "net.core.netdev_budget", under
// <procfs>/sys.
func (h *Host) Sysctl(key string) (int64, error) {
	c, err := sysctl.NewClient(filepath.Join(h.ProcFS, "sys") + "/")
	if err != nil {
		return 0, classify("opening "+filepath.Join(h.ProcFS, "sys"), err)
	}
	v, err := c.Get(key)
	if err != nil {
		return 0, classify("reading sysctl "+key, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("reading sysctl %s: %q is not an integer", key, strings.TrimSpace(v))
	}
	return n, nil
}

// ConntrackTable reads the conntrack table's count and limit into c. A
// namespace without conntrack is not an error: c.Present stays false.
func (h *Host) ConntrackTable(c *detect.Conntrack) {
	count, err := h.Sysctl("net.netfilter.nf_conntrack_count")
	if detect.Unavailable(err) {
		return
	}
	if err != nil {
		c.Err = detect.Fail(err)
		return
	}
	limit, err := h.Sysctl("net.netfilter.nf_conntrack_max")
	if err != nil {
		c.Err = detect.Fail(err)
		return
	}
	c.Present, c.Count, c.Max = true, count, limit
}

// SoftnetLimits reads netdev_max_backlog and netdev_budget into s.
func (h *Host) SoftnetLimits(s *detect.Softnet) detect.Err {
	var errs []error
	var err error
	if s.MaxBacklog, err = h.Sysctl("net.core.netdev_max_backlog"); err != nil {
		errs = append(errs, err)
	}
	if s.Budget, err = h.Sysctl("net.core.netdev_budget"); err != nil {
		errs = append(errs, err)
	}
	return detect.Fail(errors.Join(errs...))
}
