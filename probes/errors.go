package probes

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/nodetune/nodetune/detect"
)

// classify wraps err with what was being read, and with detect's sentinels
// when err means "not supported" or "permission denied".
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENODEV):
		return fmt.Errorf("%s: %w: %w", what, detect.ErrNotSupported, err)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s: %w: %w", what, detect.ErrPermission, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// fail is classify as a detect.Err.
func fail(what string, err error) detect.Err { return detect.Fail(classify(what, err)) }
