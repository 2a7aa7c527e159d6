//go:build linux

package store

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/store/internal/seam"
)

// reuseSpare writes data over the spare at path (see writer.spare), with
// l's permissions and owner, and reports true; it reports false, having
// changed nothing, when the spare cannot be written over: it is missing,
// not a regular file with one name, a file mounted over the spare's name,
// or open in another process, or the file system or the spare's owner
// does not allow a lease.
//
// A reader that opened the spare when it was the ticket file must never
// see it change: the write lease (F_SETLEASE, F_WRLCK) is granted only on a
// file that no other open file refers to, and, until it is released (by
// the close), any process that opens the file waits. So nobody reads the
// spare while it is written, and whoever had it open keeps the version it
// opened: the caller then puts a new file in its place. (One case is left:
// an open that looked the name up just before the last swap and reaches
// the lease just after this one is taken waits, then reads the version
// written here a few microseconds before the swap shows it; and if this
// process were stopped for the kernel's lease-break time, 45 s, in the
// middle of the write, such a reader would read it half written.)
func reuseSpare(path string, data []byte, l files.Like) (reused bool, err error) {
	// O_NONBLOCK: a FIFO or device put there must not block the open.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, nil
	}
	defer func() {
		if cerr := unix.Close(fd); cerr != nil && err == nil && reused {
			err = cerr
		}
	}()
	var st unix.Statx_t
	if unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS|unix.STATX_MNT_ID, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, nil
	}
	if !seam.NoSpareNameChecks {
		if st.Nlink != 1 {
			return false, nil // another name would see the write
		}
		// A file mounted over the spare's name (a bind mount of one
		// file, as containers make) is another file: its mount is not
		// the directory's.
		var dir unix.Statx_t
		if st.Mask&unix.STATX_MNT_ID == 0 || unix.Statx(unix.AT_FDCWD, filepath.Dir(path), 0, unix.STATX_MNT_ID, &dir) != nil || dir.Mask&unix.STATX_MNT_ID == 0 || dir.Mnt_id != st.Mnt_id {
			return false, nil
		}
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_WRLCK); err != nil && !seam.NoSpareLease {
		return false, nil
	}
	if perm := uint32(l.Perm); perm != 0 && uint32(st.Mode)&0o7777 != perm {
		if err := unix.Fchmod(fd, perm); err != nil {
			return true, err
		}
	}
	if l.UID >= 0 && (uint32(l.UID) != st.Uid || uint32(l.GID) != st.Gid) && os.Geteuid() == 0 {
		if err := unix.Fchown(fd, l.UID, l.GID); err != nil {
			return true, err
		}
	}
	if err := seam.Fault(seam.TempWrite); err != nil {
		return true, err
	}
	if _, err := unix.Pwrite(fd, data, 0); err != nil {
		return true, err
	}
	if st.Size > uint64(len(data)) {
		if err := unix.Ftruncate(fd, int64(len(data))); err != nil {
			return true, err
		}
	}
	return true, nil
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
