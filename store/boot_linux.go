//go:build linux

package store

import (
	"bytes"
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// bootAttr is the extended attribute of the journal that names the boot
// of the machine in which the journal was last written (see sameBoot).
const bootAttr = "user.ticket.boot"

// sameBoot reports whether the journal f was last written in this boot of
// the machine. A writer marks the journal (markBoot) before it appends, so
// records beyond the ticket file's version in a journal marked with this
// boot were written by a process that died before it replaced the ticket
// file: no one was told of them, and they are cut. In a journal marked
// with another boot, or not marked at all (a file system without extended
// attributes, a journal written by an older ticket), such records may be
// sales that were confirmed before a power cut took the ticket file's
// rename with it: they are rolled forward.
func sameBoot(f *os.File) bool {
	boot := currentBoot()
	if len(boot) == 0 {
		return false
	}
	buf := make([]byte, 64)
	n, err := unix.Fgetxattr(int(f.Fd()), bootAttr, buf)
	return err == nil && bytes.Equal(buf[:n], boot)
}

// markBoot marks the journal f as written in this boot (see sameBoot),
// unless it already is. A file system without extended attributes cannot
// be marked: records a crash leaves there are then rolled forward.
func markBoot(f *os.File) error {
	boot := currentBoot()
	if len(boot) == 0 || sameBoot(f) {
		return nil
	}
	err := unix.Fsetxattr(int(f.Fd()), bootAttr, boot, 0)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	return err
}
