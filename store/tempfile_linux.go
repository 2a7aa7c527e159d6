//go:build linux

package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// newTempFile makes an unnamed file in dir (O_TMPFILE) with permissions
// perm (0: 0666 narrowed by the umask), to be written and linked later by
// writer.replace. If its maker dies first, it vanishes with it. It returns
// nil where the file system does not support it.
func newTempFile(dir string, perm fs.FileMode) (*os.File, error) {
	mode := uint32(perm)
	if mode == 0 {
		mode = 0o666
	}
	fd, err := unix.Open(dir, unix.O_WRONLY|unix.O_TMPFILE|unix.O_CLOEXEC, mode)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), dir+"/(unnamed)"), nil
}

// linkTemp gives the unnamed file f the name path, which must not exist.
func linkTemp(f *os.File, path string) error {
	err := unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", f.Fd()), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		// Without /proc, AT_EMPTY_PATH does the same for a privileged user.
		if err2 := unix.Linkat(int(f.Fd()), "", unix.AT_FDCWD, path, unix.AT_EMPTY_PATH); err2 == nil {
			return nil
		}
	}
	return err
}

// exchange swaps the files at tmpPath and path in one step, so that the
// one that was at path is then at tmpPath, and reports true; where the
// file system cannot (or path is missing), it renames tmpPath over path
// and reports false.
func exchange(tmpPath, path string) (bool, error) {
	err := unix.Renameat2(unix.AT_FDCWD, tmpPath, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOENT) {
		return false, err
	}
	return false, os.Rename(tmpPath, path)
}
