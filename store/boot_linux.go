//go:build linux

package store

import (
	"bytes"
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// markAttr is the extended attribute of the journal that holds its mark:
// the boot of the machine in which the journal was last written, and the
// highest version a ticket file has shown since (see readMark).
const markAttr = "user.ticket.boot"

// readMark reports whether the journal f was last written in this boot of
// the machine (same), and the highest version whose ticket file a writer
// of this boot put in place (visible).
//
// Records beyond the ticket file's version are settled by it. Those up to
// visible were shown in a ticket file, so committed and told: the ticket
// file has gone back since (a copy from a backup put in place, an editor
// saving what it read before, a process that followed the lock protocol
// with a stale lock), and they are rolled forward. Those beyond visible in
// a journal of this boot were written by a process that died before it
// replaced the ticket file: no one was told of them, and they are cut. In
// a journal of another boot, or not marked at all (a file system without
// extended attributes, a journal written by an older ticket), every record
// beyond may be a sale confirmed before a power cut took the ticket
// file's rename with it: all are rolled forward.
func readMark(f *os.File) (same bool, visible int64) {
	boot := currentBoot()
	if len(boot) == 0 {
		return false, 0
	}
	buf := make([]byte, 128)
	n, err := unix.Fgetxattr(int(f.Fd()), markAttr, buf)
	if err != nil {
		return false, 0
	}
	b, v, _ := bytes.Cut(buf[:n], []byte(" "))
	if !bytes.Equal(b, boot) {
		return false, 0
	}
	visible, _ = strconv.ParseInt(string(v), 10, 64) // 0 for an older mark: cut all beyond
	return true, visible
}

// markBoot marks the journal f as written in this boot before a writer
// appends to it, unless it already is: records up to committed were
// committed before. A file system without extended attributes cannot be
// marked: records a crash leaves there are then rolled forward.
func markBoot(f *os.File, committed int64) error {
	if same, _ := readMark(f); same {
		return nil
	}
	return setMark(f, committed)
}

// markVisible records, once a writer has put the ticket file at version v
// in place, that records up to v were shown (see readMark).
func markVisible(f *os.File, v int64) error { return setMark(f, v) }

func setMark(f *os.File, v int64) error {
	boot := currentBoot()
	if len(boot) == 0 {
		return nil
	}
	err := unix.Fsetxattr(int(f.Fd()), markAttr, strconv.AppendInt(append(boot[:len(boot):len(boot)], ' '), v, 10), 0)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	return err
}
