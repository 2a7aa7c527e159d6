package store_test

import (
	"context"
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
