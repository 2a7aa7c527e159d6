//go:build linux

package store_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/internal/storetest"
)

// TestSpareNotWrittenThroughBindMount: a file bind-mounted over the spare's
// name (as a container setup or an administrator may do with one file) is
// another file, not the spare: a commit must never write over it. The spare
// is opened with O_NOFOLLOW against a symbolic link, and refused when it has
// other names, but a mount point passes both checks: the commit writes the
// next version into the mounted file, then fails to swap it (EBUSY).
//
// The spare's mount must be its directory's (statx STX_MNT_ID); the name
// then cannot be freed either (EBUSY), so the commit writes its version to
// PATH.tmp, as without a spare, and says so. (Without the mount check the
// mounted file holds the next version: checked by hand, 2026-11-30.)
func TestSpareNotWrittenThroughBindMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mount --bind")
	}
	path := storetest.NewSale(t, 10, 1, 1)
	other := filepath.Join(t.TempDir(), "precious.txt")
	const want = "precious data\n"
	if err := os.WriteFile(other, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "--bind", other, path+".spare").CombinedOutput(); err != nil {
		t.Skipf("mount --bind: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", path+".spare").Run() })
	var notes []string
	if _, err := store.Open(path, store.Options{Warn: func(n string) { notes = append(notes, n) }}).Buy(context.Background(), "b", 1); err != nil {
		t.Fatalf("buy with a file mounted over the spare: %v", err)
	}
	if got, err := os.ReadFile(other); err != nil || string(got) != want {
		t.Fatalf("the file mounted over %s.spare was written over: %q, want %q (%v)", path, got, want, err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "cannot be written over or removed") {
		t.Fatalf("notes %q, want one saying the spare cannot be written over or removed", notes)
	}
	storetest.MustBalance(t, path)
}

// TestStuckSpareKeepsBuying: a spare that can be neither written over nor
// removed (here a directory that is not empty) must not stop the sale:
// each buy then writes its version to PATH.tmp, as without a spare, and
// says why.
func TestStuckSpareKeepsBuying(t *testing.T) {
	path := storetest.NewSale(t, 10, 1, 1)
	if err := os.Remove(path + ".spare"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path+".spare", "something"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		var notes []string
		r, err := store.Open(path, store.Options{Warn: func(n string) { notes = append(notes, n) }}).Buy(context.Background(), "b", 1)
		if err != nil || r.State.Left() != int64(7-i) {
			t.Fatalf("buy %d beside a stuck spare: %+v, %v (notes %q)", i, r, err, notes)
		}
		if len(notes) != 1 || !strings.Contains(notes[0], "cannot be written over or removed") {
			t.Fatalf("buy %d: notes %q, want one saying the spare cannot be written over or removed", i, notes)
		}
	}
	if _, err := os.Stat(path + ".tmp"); err == nil {
		t.Fatalf("%s.tmp left behind", path)
	}
	storetest.MustBalance(t, path)
}
