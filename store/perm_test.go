package store_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ticketd/ticket/store"
)

// TestNewFilesCopyTheTicketFile: the replaced ticket file keeps its exact
// permissions past the umask, and the lock file and journal created beside
// a seed file get the same ones, so whoever may write the ticket file may
// also lock and buy.
func TestNewFilesCopyTheTicketFile(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "t.json")
	if err := os.WriteFile(path, []byte(`{"count": 5}`), 0o664); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o664); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(path, store.Options{}).Buy(context.Background(), "a", 1); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".lock", path + ".journal"} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != 0o664 {
			t.Errorf("%s: mode %v, want 0664 (the ticket file's, past the umask 022)", filepath.Base(p), got)
		}
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("a temporary file is left after a buy: %v", err)
	}
}

// TestRootKeepsTheOwner: root buying from a user's seed file gives the
// new lock file and journal, and the replaced ticket file, to that user,
// who can then still buy.
func TestRootKeepsTheOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root can create files for another user")
	}
	const uid, gid = 65534, 65534 // nobody
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "t.json")
	if err := os.WriteFile(path, []byte(`{"count": 5}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(path, store.Options{}).Buy(context.Background(), "root", 1); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".lock", path + ".journal"} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", filepath.Base(p), st.Uid, st.Gid, uid, gid)
		}
	}
}
