//go:build linux

package powercut

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOperations uses the mount from the test's own process as a program
// would a disk: each operation ticket needs behaves as on a local file
// system, survives a remount under KeepAll, and fails with EIO after the
// cut.
func TestOperations(t *testing.T) {
	m := New(t, Options{Variant: KeepAll, Capacity: 1 << 20})
	p := m.Path
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	content := func(name, want string) {
		t.Helper()
		if got := read(t, m, name); got != want {
			t.Errorf("%s holds %q, want %q", name, got, want)
		}
	}
	// create, O_EXCL, O_APPEND (pwrite appends too, as on Linux), ftruncate.
	f, err := os.OpenFile(p("a"), os.O_CREATE|os.O_EXCL|os.O_RDWR|os.O_APPEND, 0o640)
	check("create a", err)
	if _, err := os.OpenFile(p("a"), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o640); !errors.Is(err, os.ErrExist) {
		t.Errorf("O_EXCL over an existing file: %v, want EEXIST", err)
	}
	_, err = f.Write([]byte("hello"))
	check("write", err)
	_, err = unix.Pwrite(int(f.Fd()), []byte("!"), 0)
	check("pwrite", err)
	content("a", "hello!")
	check("ftruncate", f.Truncate(4))
	check("fdatasync", unix.Fdatasync(int(f.Fd())))
	check("fsync", f.Sync())
	content("a", "hell")
	// fallocate: mode 0 extends, KEEP_SIZE does not, PUNCH_HOLE zeroes.
	check("fallocate", unix.Fallocate(int(f.Fd()), 0, 0, 8))
	check("fallocate keep size", unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, 100))
	check("punch hole", unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 1, 2))
	content("a", "h\x00\x00l\x00\x00\x00\x00")
	check("close", f.Close())
	// rename over an existing file, hard links, symlinks, directories.
	check("write b", os.WriteFile(p("b.tmp"), []byte("new"), 0o644))
	check("write b", os.WriteFile(p("b"), []byte("old"), 0o644))
	check("rename over b", os.Rename(p("b.tmp"), p("b")))
	content("b", "new")
	check("link", os.Link(p("b"), p("c")))
	check("symlink", os.Symlink("b", p("s")))
	check("mkdir", os.Mkdir(p("d"), 0o750))
	check("write d/e", os.WriteFile(p("d/e"), nil, 0o600))
	if err := os.Remove(p("d")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("rmdir of a directory with a file: %v, want ENOTEMPTY", err)
	}
	check("chmod", os.Chmod(p("b"), 0o600))
	check("chown", os.Chown(p("b"), 12, 34))
	d, err := os.Open(m.Dir())
	check("open the root", err)
	check("fsync the root", d.Sync())
	d.Close()
	// O_TMPFILE is not supported, as the package doc says.
	if fd, err := unix.Open(m.Dir(), unix.O_TMPFILE|unix.O_WRONLY, 0o600); err != unix.EOPNOTSUPP {
		unix.Close(fd)
		t.Errorf("O_TMPFILE: %v, want EOPNOTSUPP", err)
	}
	// statfs: the capacity, and writes past it fail.
	var st unix.Statfs_t
	check("statfs", unix.Statfs(m.Dir(), &st))
	if st.Bsize != 4096 || st.Blocks != 256 {
		t.Errorf("statfs: %d blocks of %d bytes, want 256 of 4096", st.Blocks, st.Bsize)
	}
	if err := os.WriteFile(p("big"), make([]byte, 2<<20), 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("writing past the capacity: %v, want ENOSPC", err)
	}
	check("remove big", os.Remove(p("big")))

	state := func() map[string]string {
		out := map[string]string{}
		entries, err := os.ReadDir(m.Dir())
		check("readdir", err)
		for _, e := range entries {
			info, err := os.Lstat(p(e.Name()))
			check("lstat", err)
			s := info.Sys().(*syscall.Stat_t)
			v := info.Mode().String()
			if info.Mode()&os.ModeSymlink != 0 {
				target, err := os.Readlink(p(e.Name()))
				check("readlink", err)
				v += " -> " + target
			}
			out[e.Name()] = fmt.Sprintf("%s nlink %d owner %d:%d ino %d", v, s.Nlink, s.Uid, s.Gid, s.Ino)
		}
		return out
	}
	before := state()
	if names := slices.Sorted(maps.Keys(before)); !slices.Equal(names, []string{"a", "b", "c", "d", "s"}) {
		t.Errorf("readdir: %q", names)
	}
	if before["b"] != before["c"] || before["b"][:10] != "-rw-------" {
		t.Errorf("b and its hard link c: %q, %q", before["b"], before["c"])
	}
	r := m.Remount()
	after := state()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("KeepAll changed %s: %q, was %q\n%s", k, after[k], v, r)
		}
	}
	content("a", "h\x00\x00l\x00\x00\x00\x00")
	content("b", "new")

	m.Cut()
	if err := os.WriteFile(p("late"), nil, 0o644); !errors.Is(err, syscall.EIO) {
		t.Errorf("creating a file after the cut: %v, want EIO", err)
	}
	if _, err := os.Stat(p("zzz")); !errors.Is(err, syscall.EIO) {
		t.Errorf("looking up a name after the cut: %v, want EIO", err)
	}
}
