//go:build linux

package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync flushes f's data and the metadata needed to read it back (its
// size), but not its times: one write to the disk fewer than fsync.
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// preallocate reserves n bytes of blocks for f without changing its size,
// so that writing them needs no delayed allocation (see writer.replace).
// Errors are ignored: without it the write allocates as usual.
func preallocate(f *os.File, n int64) {
	_ = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, n)
}
