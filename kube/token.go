package kube

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// tokenSource gives the bearer token: a fixed one, or the content of a
// file, read again whenever the file's modification time or size
// changes. The kubelet rotates a projected ServiceAccount token by
// swapping the ..data symlink of the volume, which os.Stat follows.
type tokenSource struct {
	static string
	file   string

	mu    sync.Mutex
	token string
	mod   time.Time
	size  int64
}

// get returns the current token. A token file that cannot be read after
// it was read once keeps its last token (a rotation caught mid-swap);
// one that was never read is an error.
func (s *tokenSource) get() (string, error) {
	if s.file == "" {
		return s.static, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(s.file)
	if err == nil && s.token != "" && fi.ModTime().Equal(s.mod) && fi.Size() == s.size {
		return s.token, nil
	}
	if err == nil {
		var b []byte
		if b, err = os.ReadFile(s.file); err == nil {
			if tok := strings.TrimSpace(string(b)); tok != "" {
				s.token, s.mod, s.size = tok, fi.ModTime(), fi.Size()
				return s.token, nil
			}
			err = fmt.Errorf("%s is empty", s.file)
		}
	}
	if s.token != "" {
		return s.token, nil
	}
	return "", fmt.Errorf("reading the bearer token: %w", err)
}
