package probes

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/nodetune/nodetune/detect"
)

// conntrackStatColumns are the columns of /proc/net/stat/nf_conntrack that
// nodetune sums, by the names in its header line.
var conntrackStatColumns = []string{"insert_failed", "drop", "early_drop"}

// clashResolveColumns name the clash_resolve counter in the header: the
// kernel prints it as "clashres" (it took the place of "searched").
var clashResolveColumns = []string{"clashres", "clash_resolve"}

// ParseConntrackStat parses /proc/net/stat/nf_conntrack: a header line
// naming the columns, then one line of hexadecimal counters per CPU. It
// returns insert_failed, drop and early_drop summed over CPUs, and
// clash_resolve where the kernel has that column (hasClash). Columns are
// found by name, because their positions changed between kernels.
func ParseConntrackStat(r io.Reader) (detect.ConntrackCounters, bool, error) {
	c, hasClash, err := parseConntrackStat(r)
	if err != nil {
		return detect.ConntrackCounters{}, false, err
	}
	return c, hasClash, nil
}

func parseConntrackStat(r io.Reader) (c detect.ConntrackCounters, hasClash bool, err error) {
	sc := bufio.NewScanner(r)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return c, false, fmt.Errorf("reading nf_conntrack stats: %w", err)
		}
		return c, false, fmt.Errorf("nf_conntrack stats are empty")
	}
	header := strings.Fields(sc.Text())
	col := map[string]int{}
	for i, name := range header {
		col[name] = i
	}
	for _, name := range conntrackStatColumns {
		if _, ok := col[name]; !ok {
			return c, false, fmt.Errorf("nf_conntrack stats have no %s column in %q", name, truncate(sc.Text(), 80))
		}
	}
	clash := -1
	for _, name := range clashResolveColumns {
		if i, ok := col[name]; ok {
			clash = i
		}
	}
	cpus := 0
	for line := 2; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != len(header) {
			return c, false, fmt.Errorf("nf_conntrack stats line %d has %d columns, the header %d", line, len(fields), len(header))
		}
		vals := make([]uint64, len(fields))
		for i, f := range fields {
			v, err := strconv.ParseUint(f, 16, 64)
			if err != nil {
				return c, false, fmt.Errorf("nf_conntrack stats line %d: %q is not a hexadecimal counter", line, truncate(f, 20))
			}
			vals[i] = v
		}
		c.InsertFailed += vals[col["insert_failed"]]
		c.Drop += vals[col["drop"]]
		c.EarlyDrop += vals[col["early_drop"]]
		if clash >= 0 {
			c.ClashResolve += vals[clash]
		}
		cpus++
	}
	if err := sc.Err(); err != nil {
		return c, false, fmt.Errorf("reading nf_conntrack stats: %w", err)
	}
	if cpus == 0 {
		return c, false, fmt.Errorf("nf_conntrack stats have no per-CPU lines")
	}
	return c, clash >= 0, nil
}
