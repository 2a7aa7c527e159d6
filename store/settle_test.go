package store_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/internal/storetest"
	"github.com/ticketd/ticket/ticket"
)

// putBack replaces the ticket file at path with data, as copying a backup
// into place or an editor saving what it read earlier does.
func putBack(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+".back", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".back", path); err != nil {
		t.Fatal(err)
	}
}

// TestTicketFilePutBackKeepsConfirmedSales: a ticket file put back to an
// older version in the same boot (a backup copied into place, an editor
// saving the file it read before two sales) is behind sales that were
// confirmed: the next buy completes them, as committed, and sells the
// next ticket, not one of theirs. Records a crashed buyer left beyond
// what any ticket file showed are still cut (TestCrashPoints).
func TestTicketFilePutBackKeepsConfirmedSales(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(string) string // what was done to the old copy before it was put back
		left int64               // left after the next buy
	}{
		{"backup", func(s string) string { return s }, 2},
		// The editor's user also took a ticket by hand: recorded as taken outside.
		{"editor-took-one", func(s string) string { return strings.Replace(s, `"count": 5`, `"count": 4`, 1) }, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			path := storetest.NewSale(t, 5)
			old, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(old), `"count": 5`) {
				t.Fatalf("the ticket file reads %s", old)
			}
			s := store.Open(path, store.Options{})
			for _, b := range []string{"bob", "carol"} {
				if _, err := s.Buy(ctx, b, 1); err != nil {
					t.Fatal(err)
				}
			}
			putBack(t, path, []byte(c.edit(string(old))))
			var notes []string
			r, err := store.Open(path, store.Options{Warn: func(n string) { notes = append(notes, n) }}).Buy(ctx, "dave", 1)
			if err != nil {
				t.Fatalf("the buy after the file went back: %v", err)
			}
			if r.State.Left() != c.left {
				t.Errorf("%d left after dave's sale, want %d", r.State.Left(), c.left)
			}
			if !strings.Contains(strings.Join(notes, "\n"), "completed what was committed") {
				t.Errorf("notes %q", notes)
			}
			for b, n := range map[string]int{"bob": 1, "carol": 1, "dave": 1} {
				if got := storetest.SalesByBuyer(t, path)[b]; got != n {
					t.Errorf("%s was told it got a ticket; the journal holds %d sales for it", b, got)
				}
			}
			storetest.MustBalance(t, path)
		})
	}
}

// TestRollForwardKeepsPeerSale: after a power cut took the ticket file's
// replacement but kept a committed journal line, a buyer following the
// lock protocol took a ticket from the ticket file as it found it. The
// next buy rolls the line forward and records the peer's ticket as taken
// outside: neither sale is lost, none sold twice. When the peer took the
// ticket the rolled line had already sold (the last one), the next buy
// refuses, says so and changes nothing; Repair records the sale as sold
// out and says how many tickets were sold twice.
func TestRollForwardKeepsPeerSale(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name        string
		total, sold int64
	}{
		{"tickets-left", 5, 1},
		{"last-ticket", 3, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := storetest.NewSale(t, c.total, c.sold)
			st, err := storetest.TicketFile(path)
			if err != nil {
				t.Fatal(err)
			}
			storetest.AppendFile(t, path+".journal", storetest.UncommittedLine(t, st, 1))
			store.SimulateReboot(t)
			// The peer: count - 1 on the file as the power cut left it.
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			putBack(t, path, []byte(strings.Replace(string(data), `"count": `+itoa(st.Left()), `"count": `+itoa(st.Left()-1), 1)))
			if c.name == "last-ticket" {
				before := storetest.TakeSnapshot(t, path)
				_, err := store.Open(path, store.Options{}).Buy(ctx, "next", 1)
				var oversold *ticket.OversoldError
				if !errors.As(err, &oversold) || !errors.Is(err, ticket.ErrInvalid) || oversold.By != 1 {
					t.Fatalf("the buy after the peer took the last ticket again: %v, want 1 ticket sold twice", err)
				}
				if after := storetest.TakeSnapshot(t, path); string(after.Ticket) != string(before.Ticket) || string(after.Journal) != string(before.Journal) {
					t.Fatal("the refused buy changed the sale's files")
				}
				r, err := store.Open(path, store.Options{}).Repair(ctx)
				if err != nil || r.State.Left() != 0 || !strings.Contains(r.Note, "1 ticket was sold twice") {
					t.Fatalf("repair: %+v, %v", r, err)
				}
				rep := storetest.MustBalance(t, path)
				if rep.Outside != 0 || rep.State.Left() != 0 || rep.Sales != 2 { // the setup sale and the rolled one
					t.Fatalf("after repair: %+v", rep)
				}
				return
			}
			r, err := store.Open(path, store.Options{}).Buy(ctx, "next", 1)
			if err != nil {
				t.Fatal(err)
			}
			if want := st.Left() - 3; r.State.Left() != want {
				t.Errorf("%d left after the rolled sale, the peer's and the next, want %d", r.State.Left(), want)
			}
			rep := storetest.MustBalance(t, path)
			if rep.Outside != 1 || rep.Sales != 3 { // the setup sale, the rolled one and the next
				t.Errorf("the books: %d sales, %d taken outside; want 3 and 1", rep.Sales, rep.Outside)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
