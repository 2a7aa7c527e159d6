//go:build linux

package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/internal/storetest"
	"github.com/ticketd/ticket/ticket"
)

// descriptors counts this process's descriptors open on the files at
// paths.
func descriptors(t *testing.T, paths ...string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, p := range paths {
		want, err := os.Stat(p)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if fi, err := os.Stat(filepath.Join("/proc/self/fd", e.Name())); err == nil && os.SameFile(fi, want) {
				n++
			}
		}
	}
	return n
}

// TestStoreKeepsLockAndJournalOpen: a Store keeps the lock file and the
// journal open between its buys, one descriptor each, whatever the number
// of buys, and Close closes them.
func TestStoreKeepsLockAndJournalOpen(t *testing.T) {
	for _, opts := range []store.Options{{NoSync: true}, {NoSync: true, NoGroup: true}} {
		path := storetest.NewSale(t, 100)
		s := store.Open(path, opts)
		for range 20 {
			if _, err := s.Buy(context.Background(), "b", 1); err != nil {
				t.Fatal(err)
			}
		}
		if n := descriptors(t, path+".lock", path+".journal"); n != 2 {
			t.Fatalf("%+v: %d descriptors open on the lock file and journal after 20 buys, want 2", opts, n)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if n := descriptors(t, path+".lock", path+".journal"); n != 0 {
			t.Fatalf("%+v: %d descriptors still open after Close", opts, n)
		}
		if _, err := s.Buy(context.Background(), "b", 1); err != nil { // usable after Close
			t.Fatal(err)
		}
		s.Close()
	}
}

// TestKeptFilesFollowTheSale: a Store that keeps the lock file and the
// journal open buys from the sale at its path after another process made
// a new sale there (init --force archives the journal and makes a new
// one; a copy moved over the files replaces all three), and never into
// the files it kept.
func TestKeptFilesFollowTheSale(t *testing.T) {
	ctx := context.Background()
	for _, how := range []string{"init --force", "files moved over"} {
		t.Run(how, func(t *testing.T) {
			path := storetest.NewSale(t, 10)
			s := store.Open(path, store.Options{NoSync: true})
			defer s.Close()
			if _, err := s.Buy(ctx, "before", 1); err != nil {
				t.Fatal(err)
			}
			switch how {
			case "init --force":
				other := store.Open(path, store.Options{NoSync: true})
				if _, _, err := other.Init(ctx, 5, store.Replace); err != nil {
					t.Fatal(err)
				}
				other.Close()
			case "files moved over":
				next := storetest.NewSale(t, 5)
				for _, suffix := range []string{".lock", ".journal", ""} {
					if err := os.Rename(next+suffix, path+suffix); err != nil {
						t.Fatal(err)
					}
				}
			}
			r, err := s.Buy(ctx, "after", 2)
			if err != nil {
				t.Fatal(err)
			}
			if r.Sale.Seq != 1 || r.State.Left() != 3 {
				t.Fatalf("the buy after the new sale: #%d, %d left; want #1, 3 left (of the new sale's 5)", r.Sale.Seq, r.State.Left())
			}
			rep, err := store.Open(path, store.Options{}).Verify(ctx)
			if err != nil || !rep.Balanced() || rep.Sales != 1 {
				t.Fatalf("verify: %+v, %v", rep, err)
			}
			var buyers []string
			for rec, err := range store.Open(path, store.Options{}).Sales() {
				if err != nil {
					t.Fatal(err)
				}
				if rec.Kind == ticket.KindSale {
					buyers = append(buyers, rec.Buyer)
				}
			}
			if len(buyers) != 1 || buyers[0] != "after" {
				t.Fatalf("the new sale's journal holds the sales of %q, want [after]", buyers)
			}
		})
	}
}
