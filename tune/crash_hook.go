//go:build nodetunetest

package tune

import (
	"os"
	"strconv"
	"strings"
)

// crasherFromEnv arms the crash hook from CrashEnv. It is built only into
// test binaries (go build -tags nodetunetest).
func crasherFromEnv() *crasher {
	v := os.Getenv(CrashEnv)
	if v == "" {
		return nil
	}
	step, count, _ := strings.Cut(v, ":")
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 {
		n = 1
	}
	return &crasher{step: step, n: n, seen: map[string]int{}}
}
