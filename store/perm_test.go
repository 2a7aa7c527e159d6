package store_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/internal/storetest"
	"github.com/ticketd/ticket/store/lock"
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
	dir := sharedDir(t)
	path := filepath.Join(dir, "t.json")
	if err := os.WriteFile(path, []byte(`{"count": 5}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, nobodyUID, nobodyGID); err != nil {
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
		if st.Uid != nobodyUID || st.Gid != nobodyGID {
			t.Errorf("%s: owner %d:%d, want %d:%d", filepath.Base(p), st.Uid, st.Gid, nobodyUID, nobodyGID)
		}
	}
}

// TestRootRecreatesTheLockFileForTheOwner (review finding 10): someone
// deleted a user's PATH.lock, then root runs verify, repair or a buy, also
// one that was waiting for the lock when it was deleted. The lock file
// root creates must be the ticket file's owner's, with the ticket file's
// mode, or the owner and its peers could no longer lock their own sale.
func TestRootRecreatesTheLockFileForTheOwner(t *testing.T) {
	dir := sharedDir(t)
	path := filepath.Join(dir, "t.json")
	s := store.Open(path, store.Options{})
	if _, _, err := s.Init(context.Background(), 5, store.Create); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".lock", path + ".journal"} {
		if err := os.Chown(p, nobodyUID, nobodyGID); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o664); err != nil {
			t.Fatal(err)
		}
	}
	check := func(after string) {
		t.Helper()
		info, err := os.Stat(path + ".lock")
		if err != nil {
			t.Fatalf("after %s: %v", after, err)
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Uid != nobodyUID || st.Gid != nobodyGID || info.Mode().Perm() != 0o664 {
			t.Errorf("after %s: the new lock file is %d:%d %v, want %d:%d -rw-rw-r--", after, st.Uid, st.Gid, info.Mode().Perm(), nobodyUID, nobodyGID)
		}
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"verify", func() error { _, err := s.Verify(ctx); return err }},
		{"repair", func() error { _, err := s.Repair(ctx); return err }},
		{"buy", func() error { _, err := s.Buy(ctx, "root", 1); return err }},
	} {
		if err := os.Remove(path + ".lock"); err != nil {
			t.Fatal(err)
		}
		if err := tc.run(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		check(tc.name)
	}
	// A verify waiting for the lock when the lock file is deleted locks
	// the one it then creates.
	unlock, err := lock.Lock(ctx, path+".lock", 0o664)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := s.Verify(ctx); done <- err }()
	storetest.BlockedOnLock(t, os.Getpid())
	if err := os.Remove(path + ".lock"); err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	check("a verify that waited while the lock file was deleted")
}

// nobody is the user whose sale root buys from in these tests.
const nobodyUID, nobodyGID = 65534, 65534

// sharedDir returns a new directory every user may write, skipping the
// test unless it runs as root (only root can create files for another
// user).
func sharedDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root can create files for another user")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}
