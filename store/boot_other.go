//go:build !linux

package store

import "os"

// readMark cannot tell one boot from another here: records beyond the
// ticket file's version are always rolled forward (see the Linux version).
func readMark(f *os.File) (same bool, visible int64) { return false, 0 }

// markBoot has nothing to mark here.
func markBoot(f *os.File, committed int64) error { return nil }

// markVisible has nothing to mark here.
func markVisible(f *os.File, v int64) error { return nil }
