//go:build linux

package store_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/store/internal/storetest"
	"github.com/ticketd/ticket/ticket"
)

// TestSpareKeepsOpenReadersVersion: a commit writes the next version over
// the spare (the version before the ticket file, which the last commit
// swapped out) instead of making a new file. A reader that opened the
// ticket file before two commits holds what is then the spare: it must
// read the version it opened, whole. Here a shell opens the ticket file
// and waits while two buys are made, then reads what it opened.
//
// The negative control writes over the spare without the lease that tells
// whether any process has it open: the reader then reads a version that
// was not the ticket file when it opened it.
func TestSpareKeepsOpenReadersVersion(t *testing.T) {
	for _, control := range []bool{false, true} {
		name := "lease"
		if control {
			name = "control-no-lease"
		}
		t.Run(name, func(t *testing.T) {
			path := storetest.NewSale(t, 10, 1, 1) // version 2; the spare holds version 1
			opened, err := storetest.TicketFile(path)
			if err != nil {
				t.Fatal(err)
			}
			reader := exec.Command("sh", "-c", `exec 3<"$1"; echo opened; read go; cat <&3`, "reader", path)
			stdin, err := reader.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := reader.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := reader.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { reader.Process.Kill(); reader.Wait() })
			out := bufio.NewReader(stdout)
			if line, err := out.ReadString('\n'); err != nil || line != "opened\n" {
				t.Fatalf("the reader said %q, %v", line, err)
			}
			seam.NoSpareLease = control
			defer func() { seam.NoSpareLease = false }()
			s := store.Open(path, store.Options{})
			for i := 0; i < 2; i++ {
				if _, err := s.Buy(context.Background(), "b", 1); err != nil {
					t.Fatal(err)
				}
			}
			io.WriteString(stdin, "go\n")
			stdin.Close()
			data, err := io.ReadAll(out)
			if err != nil {
				t.Fatal(err)
			}
			reader.Wait()
			read, err := ticket.Parse(data)
			if control {
				if err == nil && read.Version() == opened.Version() {
					t.Fatalf("control: the reader still read version %d; the spare was not written over", read.Version())
				}
				t.Logf("control: the reader read %q (%v) instead of version %d", strings.TrimSpace(string(data)), err, opened.Version())
				return
			}
			if err != nil || read.Version() != opened.Version() {
				t.Fatalf("the reader opened version %d and read %q (%v)", opened.Version(), data, err)
			}
			storetest.MustBalance(t, path)
			mustSpareBehind(t, path, opened.Version()+2)
		})
	}
}

// TestSpareNotWrittenThroughOtherNames: a spare that another name also
// points to (a hard link an administrator made, a symbolic link put in its
// place) is never written over, which would change the other file: the
// commit puts a new file in its place instead.
//
// The control writes over the spare without looking at its names: the
// hard link's other name then shows the next version.
func TestSpareNotWrittenThroughOtherNames(t *testing.T) {
	for _, kind := range []string{"hard link", "symbolic link", "control hard link"} {
		t.Run(strings.ReplaceAll(kind, " ", "-"), func(t *testing.T) {
			control := strings.HasPrefix(kind, "control")
			seam.NoSpareNameChecks = control
			defer func() { seam.NoSpareNameChecks = false }()
			path := storetest.NewSale(t, 10, 1, 1)
			other := filepath.Join(t.TempDir(), "other.json")
			var err error
			if strings.HasSuffix(kind, "hard link") {
				err = os.Link(path+".spare", other)
			} else {
				if err = os.WriteFile(other, []byte("keep me\n"), 0o644); err == nil {
					if err = os.Remove(path + ".spare"); err == nil {
						err = os.Symlink(other, path+".spare")
					}
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(other)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Open(path, store.Options{}).Buy(context.Background(), "b", 1); err != nil {
				t.Fatal(err)
			}
			after, err := os.ReadFile(other)
			if control {
				if err != nil || string(after) == string(before) {
					t.Fatalf("control: the hard link's other name still shows %q (%v)", after, err)
				}
				t.Logf("control: the other name now shows %q", bytes.TrimSpace(after))
				return
			}
			if err != nil || string(after) != string(before) {
				t.Fatalf("the file the spare's %s names changed: %q, want %q (%v)", kind, after, before, err)
			}
			storetest.MustBalance(t, path)
			mustSpareBehind(t, path, 3)
		})
	}
}

// TestSpareNotWrittenThroughBindMount: a file bind-mounted over the spare's
// name (as a container setup or an administrator may do with one file) is
// another file, not the spare: a commit must never write over it. The spare
// is opened with O_NOFOLLOW against a symbolic link, and refused when it has
// other names, but a mount point passes both checks: the commit writes the
// next version into the mounted file, then fails to swap it (EBUSY).
//
// The spare's mount must be its directory's (statx STX_MNT_ID); the name
// then cannot be freed either (EBUSY), so the commit writes its version to
// PATH.tmp, as without a spare, and says so. The control writes over the
// spare without looking at its names: the mounted file holds the next
// version.
func TestSpareNotWrittenThroughBindMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mount --bind")
	}
	for _, control := range []bool{false, true} {
		t.Run(map[bool]string{false: "check", true: "control"}[control], func(t *testing.T) {
			seam.NoSpareNameChecks = control
			defer func() { seam.NoSpareNameChecks = false }()
			bindMountOverSpare(t, control)
		})
	}
}

func bindMountOverSpare(t *testing.T, control bool) {
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
	_, berr := store.Open(path, store.Options{Warn: func(n string) { notes = append(notes, n) }}).Buy(context.Background(), "b", 1)
	got, err := os.ReadFile(other)
	if control {
		if err != nil || string(got) == want {
			t.Fatalf("control: the mounted file still holds %q (%v; buy: %v)", got, err, berr)
		}
		t.Logf("control: the mounted file now holds %q (buy: %v)", bytes.TrimSpace(got), berr)
		return
	}
	if berr != nil {
		t.Fatalf("buy with a file mounted over the spare: %v", berr)
	}
	if err != nil || string(got) != want {
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

// TestInitForceDropsTheSpare: a sale made anew over another (init --force,
// copy --force) removes the old sale's spare, so that the new sale's first
// buy never writes over the old sale's file in place (after a power cut it
// could come back with the old sale's content).
func TestInitForceDropsTheSpare(t *testing.T) {
	path := storetest.NewSale(t, 1000, 1, 1)
	if _, err := os.Stat(path + ".spare"); err != nil {
		t.Fatalf("no spare to begin with: %v", err)
	}
	if _, _, err := store.Open(path, store.Options{}).Init(context.Background(), 10, store.Replace); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".spare"); err == nil {
		t.Fatalf("%s.spare of the old sale is still there after init --force", path)
	}
	storetest.MustBalance(t, path)
}
