package store_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/internal/storetest"
	"github.com/ticketd/ticket/ticket"
)

// TestRollForwardBeyondTheTailWindow: when the sales the ticket file does
// not show yet fill more than the first window read from the journal's end
// (a large batch committed just before a power cut took the ticket file's
// rename), reading goes back as far as needed, and the next buy after the
// restart completes all of them.
func TestRollForwardBeyondTheTailWindow(t *testing.T) {
	path := storetest.NewSale(t, 1000, 1)
	st, err := store.Open(path, store.Options{}).Read()
	if err != nil {
		t.Fatal(err)
	}
	var lines []byte
	const n = 200 // about 20 KiB: several windows
	for range n {
		next, err := st.Take(1)
		if err != nil {
			t.Fatal(err)
		}
		lines = ticket.Record{Seq: next.Version(), Buyer: "crashed-batch", Qty: 1, Left: next.Left(), PID: 1, Time: time.Unix(0, 0)}.AppendLine(lines)
		st = next
	}
	if len(lines) <= 2*store.TailWindow {
		t.Fatalf("%d bytes of pending lines do not exceed two windows of %d", len(lines), store.TailWindow)
	}
	storetest.AppendFile(t, path+".journal", lines)
	store.SimulateReboot(t)
	got, err := store.Open(path, store.Options{}).Read()
	if err != nil || got.Version() != 1+n || got.Left() != 1000-1-n {
		t.Fatalf("Read: %+v, %v; want version %d, %d left", got, err, 1+n, 1000-1-n)
	}
	if _, err := store.Open(path, store.Options{}).Buy(context.Background(), "next", 1); err != nil {
		t.Fatal(err)
	}
	if file, err := storetest.TicketFile(path); err != nil || file.Version() != 2+n {
		t.Fatalf("the ticket file after the next buy: %+v, %v; want version %d", file, err, 2+n)
	}
	storetest.MustBalance(t, path)
}

// TestZeroResidueIsCut: a file system that writes a file's size apart from
// its data (ext4 without its journal, xfs) can come back from a power cut
// with zeros where writes that were never fsynced had been, alone at the
// end or in lines followed by whole-looking ones. Nothing from the first
// such line on was confirmed (the fsync that confirmed a later line would
// have written it), so the next buy cuts it all, says so, and the books
// balance; Verify reports it as pending, not as damage; and a ticket file
// damaged by the same cut is rebuilt by Repair, which cuts it too.
func TestZeroResidueIsCut(t *testing.T) {
	for _, c := range []struct{ name, tail string }{
		{"zeros-at-the-end", strings.Repeat("\x00", 300)},
		{"zeros-then-lines", strings.Repeat("\x00", 100) + "\n" + `{"seq":3,"buyer":"x","qty":1,"left":7,"pid":1,"time":"2026-11-25T20:00:00Z"}` + "\n"},
		{"line-half-zeros", `{"seq":3,"buyer":"x","qty":1,` + strings.Repeat("\x00", 40) + "\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := storetest.NewSale(t, 10, 1, 1)
			storetest.AppendFile(t, path+".journal", []byte(c.tail))
			rep := storetest.MustBalance(t, path)
			if rep.Pending == "" || rep.Sales != 2 {
				t.Fatalf("verify: %d sales, pending %q; want 2 and the residue pending", rep.Sales, rep.Pending)
			}
			var notes []string
			r, err := store.Open(path, store.Options{Warn: func(n string) { notes = append(notes, n) }}).Buy(context.Background(), "next", 1)
			if err != nil || r.Sale.Seq != 3 {
				t.Fatalf("the buy after the residue: %+v, %v", r, err)
			}
			if !strings.Contains(strings.Join(notes, "\n"), "cut an unfinished line") {
				t.Fatalf("notes %q", notes)
			}
			if rep := storetest.MustBalance(t, path); rep.Pending != "" || rep.Sales != 3 {
				t.Fatalf("after the buy: %d sales, pending %q", rep.Sales, rep.Pending)
			}
			// The same residue beside a ticket file the cut emptied.
			storetest.AppendFile(t, path+".journal", []byte(c.tail))
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := store.Open(path, store.Options{}).Repair(context.Background())
			if err != nil || got.State.Version() != 3 || got.Note == "" {
				t.Fatalf("repair: %+v, %v", got, err)
			}
			if rep := storetest.MustBalance(t, path); rep.Pending != "" || rep.Sales != 3 {
				t.Fatalf("after the repair: %d sales, pending %q", rep.Sales, rep.Pending)
			}
		})
	}
}

// TestJournalGrownAhead: the journal grows a block of padding at a time,
// so that a commit writes its line over padding and leaves the file's size
// as it was; its records are whole lines, the padding only spaces after
// the last one, which a JSON Lines reader skips as whitespace.
func TestJournalGrownAhead(t *testing.T) {
	path := storetest.NewSale(t, 100, 1)
	size := func() int64 {
		fi, err := os.Stat(path + ".journal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	grown := size()
	s := store.Open(path, store.Options{})
	for i := range 10 {
		if _, err := s.Buy(context.Background(), fmt.Sprintf("b%d", i), 1); err != nil {
			t.Fatal(err)
		}
		if now := size(); now != grown {
			t.Fatalf("buy %d changed the journal's size from %d to %d: it was not written in place", i, grown, now)
		}
	}
	data, err := os.ReadFile(path + ".journal")
	if err != nil {
		t.Fatal(err)
	}
	records := strings.TrimRight(string(data), " ")
	if len(records) == len(data) || strings.Count(records, "\n") != 12 || !strings.HasSuffix(records, "\n") {
		t.Fatalf("the journal is not 12 whole lines and padding: %d bytes, %d of them records", len(data), len(records))
	}
	for line := range strings.Lines(records) {
		if _, err := ticket.ParseRecord([]byte(strings.TrimSpace(line))); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
	}
	storetest.MustBalance(t, path)
}
