// Package files holds what the store's packages do alike to files: the
// one-line error for a failed operation on a file, creating a file with
// the permissions and owner of another, and the private directory of a
// user's for what ticket's processes share.
package files

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Error describes a failed operation on a file in one line: what was done
// to which file, then the system's reason without repeating them (os
// errors name the operation and the file again), saying plainly when the
// disk is full. It keeps err's chain for errors.Is.
func Error(op, path string, err error) error {
	// Only an error that is itself about path: one wrapped with words of
	// its own keeps them.
	switch e := err.(type) {
	case *fs.PathError:
		if e.Path == path {
			err = e.Err
		}
	case *os.LinkError:
		if e.Old == path {
			err = e.Err
		}
	}
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%s %s: the disk is full: %w", op, path, err)
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

// Like is the permissions and owner a new file copies. A zero Perm means
// 0666 narrowed by the umask; a negative UID keeps the creator as owner.
type Like struct {
	Perm     fs.FileMode
	UID, GID int
}

// LikeFile returns what new files beside the file described by info copy.
func LikeFile(info fs.FileInfo) Like {
	uid, gid := Owner(info)
	return Like{Perm: info.Mode().Perm(), UID: uid, GID: gid}
}

// Create creates an empty file at path unless one exists, and reports
// whether it did. A non-zero l.Perm is set exactly, past the umask, so that
// whoever may write the ticket file may also lock and journal; zero means
// 0666 narrowed by the umask, as for any new file. Run as root, it gives the
// file l's owner, so that root buying from a user's sale does not lock the
// user out of it.
func Create(path string, l Like) (created bool, err error) {
	mode := l.Perm
	if mode == 0 {
		mode = 0o666
	}
	f, err := Open(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, mode)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if l.Perm != 0 {
		err = f.Chmod(l.Perm)
	}
	if err == nil && l.UID >= 0 && os.Geteuid() == 0 {
		err = f.Chown(l.UID, l.GID)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return true, err
}

// Links returns the number of names of a file, or 1 where unknown.
func Links(info fs.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// Owner returns the uid and gid of a file, or -1, -1 where unknown.
func Owner(info fs.FileInfo) (int, int) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}

// RuntimeDir returns the directory named leaf, in this user's runtime
// directory, for what ticket's processes share: $XDG_RUNTIME_DIR/leaf (a
// per-user tmpfs on most Linux systems), else shm/leaf-UID when shm names
// a directory (/dev/shm; "" for none), else leaf-UID in os.TempDir(). It
// neither makes nor checks it: see Private.
func RuntimeDir(leaf, shm string) string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, leaf)
	}
	if shm != "" {
		if fi, err := os.Stat(shm); err == nil && fi.IsDir() {
			return filepath.Join(shm, fmt.Sprintf("%s-%d", leaf, os.Geteuid()))
		}
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("%s-%d", leaf, os.Geteuid()))
}

// Private creates dir (0700) unless it exists and checks that it is a real
// directory (not a symbolic link) of the current user that no one else may
// write: in a directory others can write, another user could plant a file
// or a symbolic link where ticket expects its own. what names the
// directory in errors.
func Private(dir, what string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s %s: not a directory (%s): refusing to use it", what, dir, fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s %s: owned by uid %d, not by you (uid %d): refusing to use it", what, dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s %s: writable by others (mode %v): refusing to use it", what, dir, fi.Mode().Perm())
	}
	return nil
}

// BootID returns this boot of the machine's id (the kernel's boot_id), or
// nil where it is unknown.
var BootID = sync.OnceValue(func() []byte {
	// Raw calls: os.ReadFile would hand the descriptor to the poller,
	// which a buy has no other use for (see Open).
	fd, err := syscall.Open("/proc/sys/kernel/random/boot_id", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer syscall.Close(fd)
	buf := make([]byte, 64)
	n, err := syscall.Read(fd, buf)
	if err != nil || n <= 0 {
		return nil
	}
	return bytes.TrimSpace(buf[:n])
})

// Stamp is the time in the names of what is kept aside instead of being
// deleted: an archived journal, a damaged ticket file or state.
func Stamp(t time.Time) string { return t.UTC().Format("20060102T150405.000000000Z") }

// Open is os.OpenFile for the regular files of a sale, in fewer system
// calls: os.OpenFile asks the poller to take every descriptor it opens
// and, for a regular file, takes it back (four fcntl calls), where a
// file the program only reads and writes in place gains nothing from it.
// Reads and writes of the file block, as they do for any regular file.
// O_NONBLOCK in flag only keeps the open itself from blocking (on a FIFO
// put at path): it is cleared once the file is open, or os.NewFile would
// hand the descriptor to the poller, and start the poller (an epoll
// instance, an eventfd) in a process that has no other use for it.
func Open(path string, flag int, perm fs.FileMode) (*os.File, error) {
	fd, err := syscall.Open(path, flag|syscall.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	if flag&syscall.O_NONBLOCK != 0 {
		// One F_SETFL, without reading the flags first as
		// syscall.SetNonblock does: of those it sets, only O_APPEND is
		// ever asked of Open.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flag&unix.O_APPEND); err != nil {
			syscall.Close(fd)
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
	}
	return os.NewFile(uintptr(fd), path), nil
}
