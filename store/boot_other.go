//go:build !linux

package store

import "os"

// sameBoot cannot tell one boot from another here: records beyond the
// ticket file's version are always rolled forward (see the Linux version).
func sameBoot(f *os.File) bool { return false }

// markBoot has nothing to mark here.
func markBoot(f *os.File) error { return nil }
