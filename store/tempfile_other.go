//go:build !linux

package store

import (
	"errors"
	"io/fs"
	"os"
)

// newTempFile needs O_TMPFILE, which only Linux has.
func newTempFile(dir string, perm fs.FileMode) (*os.File, error) {
	return nil, errors.ErrUnsupported
}

// linkTemp is never called without newTempFile.
func linkTemp(f *os.File, path string) error { return errors.ErrUnsupported }

// exchange renames tmpPath over path: swapping them in one step needs
// Linux's RENAME_EXCHANGE.
func exchange(tmpPath, path string) (bool, error) { return false, os.Rename(tmpPath, path) }
