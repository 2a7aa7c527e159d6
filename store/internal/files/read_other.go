//go:build !linux

package files

import (
	"io/fs"
	"os"
	"syscall"
)

// A Reading is a file opened to be read once (see OpenReading).
type Reading struct{ *os.File }

// OpenReading opens the file at path to read it, without blocking on a
// FIFO or device put at the path, for the caller to refuse once Stat says
// what it is.
func OpenReading(path string) (*Reading, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	return &Reading{f}, nil
}

// SameFile reports whether a and b describe the same file.
func SameFile(a, b fs.FileInfo) bool { return os.SameFile(a, b) }
