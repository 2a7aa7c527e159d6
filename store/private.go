package store

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// privateDir returns this user's directory named leaf for what ticket
// shares between its processes and no one else must touch, making it if
// it is missing: $XDG_RUNTIME_DIR/leaf (a per-user tmpfs on most Linux
// systems), else /dev/shm/leaf-UID, else leaf-UID in os.TempDir(). See
// checkPrivate for what it must be.
func privateDir(leaf string) (string, error) {
	var dir string
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		dir = filepath.Join(d, leaf)
	} else if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dir = filepath.Join("/dev/shm", fmt.Sprintf("%s-%d", leaf, os.Geteuid()))
	} else {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("%s-%d", leaf, os.Geteuid()))
	}
	return dir, checkPrivate(dir, leaf+" directory")
}

// checkPrivate creates dir (0700) unless it exists and checks that it is a
// real directory (not a symbolic link) of the current user that no one
// else may write: in a directory others can write, another user could
// plant a file or a symbolic link where ticket expects its own. what names
// the directory in errors.
func checkPrivate(dir, what string) error {
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
