//go:build linux

package files

import (
	"io"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A Reading is a file opened to be read once, through its descriptor:
// an os.File costs an fcntl(2) at its making, and a look at the path
// before the open (so that a FIFO does not block it) another call, on a
// path every buy reads. Open one with OpenReading.
type Reading struct {
	fd   int
	path string
}

// OpenReading opens the file at path to read it. It never blocks: a FIFO
// or device put at the path opens at once (O_NONBLOCK), and never becomes
// the process's terminal (O_NOCTTY), for the caller to refuse once Stat
// says what it is; a regular file reads as always.
func OpenReading(path string) (*Reading, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return &Reading{fd: fd, path: path}, nil
	}
}

// Stat returns what the open file is.
func (r *Reading) Stat() (fs.FileInfo, error) {
	info := &statInfo{name: filepath.Base(r.path)}
	if err := syscall.Fstat(r.fd, &info.st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: r.path, Err: err}
	}
	return info, nil
}

// Read reads from the file; at its end, io.EOF.
func (r *Reading) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(r.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &fs.PathError{Op: "read", Path: r.path, Err: err}
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// Close closes the file.
func (r *Reading) Close() error {
	if r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}

// statInfo is fstat(2)'s answer as an fs.FileInfo, whose Sys is a
// *syscall.Stat_t, as os's is.
type statInfo struct {
	name string
	st   syscall.Stat_t
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s *statInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s *statInfo) Sys() any           { return &s.st }

// Mode is the file's mode as os.Stat gives it.
func (s *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if s.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// SameFile reports whether a and b describe the same file (device and
// inode), each made by os or by this package: os.SameFile knows only its
// own.
func SameFile(a, b fs.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}
