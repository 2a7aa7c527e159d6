//go:build linux

package store_test

import (
	"bufio"
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
func TestSpareNotWrittenThroughOtherNames(t *testing.T) {
	for _, kind := range []string{"hard link", "symbolic link"} {
		t.Run(strings.ReplaceAll(kind, " ", "-"), func(t *testing.T) {
			path := storetest.NewSale(t, 10, 1, 1)
			other := filepath.Join(t.TempDir(), "other.json")
			var err error
			if kind == "hard link" {
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
			if after, err := os.ReadFile(other); err != nil || string(after) != string(before) {
				t.Fatalf("the file the spare's %s names changed: %q, want %q (%v)", kind, after, before, err)
			}
			storetest.MustBalance(t, path)
			mustSpareBehind(t, path, 3)
		})
	}
}
