// Package storetest holds what the tests of the store's packages share:
// sales made for a test and their books checked, faults injected through
// the seam, and the one way these tests run processes: the test binary
// started again as a child in a role (a buyer, a lock holder, a buyer that
// dies at a step of its commit, a buyer written without ticket), killed by
// pid when the test ends, whatever the outcome.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/ticket"
	"golang.org/x/sys/unix"
)

// ErrInjected is the I/O error the fault seam returns in these tests.
var ErrInjected = errors.New("injected I/O error")

// SetFault replaces the fault seam for the rest of the test.
func SetFault(t testing.TB, f func(step string) error) {
	t.Helper()
	old := seam.Fault
	seam.Fault = f
	t.Cleanup(func() { seam.Fault = old })
}

// NewSale creates a sale of total tickets in a fresh directory and makes
// the given buys, returning the ticket file's path.
func NewSale(t testing.TB, total int64, buys ...int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tickets.json")
	s := store.Open(path, store.Options{})
	defer s.Close()
	if _, _, err := s.Init(context.Background(), total, store.Create); err != nil {
		t.Fatal(err)
	}
	for i, q := range buys {
		if _, err := s.Buy(context.Background(), fmt.Sprintf("setup%d", i+1), q); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// MustBalance fails the test unless Verify finds the books balanced, and
// returns its report.
func MustBalance(t testing.TB, path string) store.Report {
	t.Helper()
	r, err := store.Open(path, store.Options{}).Verify(context.Background())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !r.Balanced() {
		t.Fatalf("verify: the books do not balance: %q", r.Problems)
	}
	return r
}

// SalesByBuyer returns how many sales the journal of the sale at path
// holds for each buyer.
func SalesByBuyer(t testing.TB, path string) map[string]int {
	t.Helper()
	n := map[string]int{}
	for r, err := range store.Open(path, store.Options{}).Sales() {
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind == ticket.KindSale {
			n[r.Buyer]++
		}
	}
	return n
}

// Snapshot is the content of a sale's files.
type Snapshot struct {
	Ticket, Journal []byte
	Tmp             bool // PATH.tmp exists
}

// TakeSnapshot reads a sale's files.
func TakeSnapshot(t testing.TB, path string) Snapshot {
	t.Helper()
	tk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j, err := os.ReadFile(path + ".journal")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	_, err = os.Stat(path + ".tmp")
	return Snapshot{Ticket: tk, Journal: j, Tmp: err == nil}
}

// TicketFile reads the ticket file at path as it is, without the journal.
func TicketFile(path string) (ticket.State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return ticket.State{}, err
	}
	return ticket.Parse(data)
}

// AppendFile appends data to the file at path.
func AppendFile(t testing.TB, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// MarkOtherBoot marks the journal at path as written in another boot of
// the machine, as if it were written before a restart.
func MarkOtherBoot(t testing.TB, path string) {
	t.Helper()
	if err := unix.Setxattr(path, "user.ticket.boot", []byte("an-earlier-boot"), 0); err != nil {
		t.Skipf("cannot mark %s with an extended attribute: %v", path, err)
	}
}

// UncommittedLine is a journal line for the sale after state's version, as
// a buyer killed after appending it leaves behind: whole, it is a committed
// sale the ticket file does not show yet; cut short, it was never committed.
func UncommittedLine(t testing.TB, state ticket.State, qty int64) []byte {
	t.Helper()
	next, err := state.Take(qty)
	if err != nil {
		t.Fatal(err)
	}
	return ticket.Record{Seq: next.Version(), Buyer: "crashed", Qty: qty, Left: next.Left(), PID: 1, Time: time.Unix(0, 0)}.AppendLine(nil)
}

// WaitFor polls cond every millisecond until it holds, failing the test
// after d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v", what, d)
		}
	}
}

// Long reports whether the soaks and long loops run at their full size:
// TICKET_TEST_LONG=1, as .ci/run sets. Without it every test still runs,
// each guarantee exercised once, at a size that keeps go test ./... quick.
func Long() bool { return os.Getenv("TICKET_TEST_LONG") == "1" }

// Size returns long under TICKET_TEST_LONG=1 (see Long), quick otherwise.
func Size[T any](quick, long T) T {
	if Long() {
		return long
	}
	return quick
}
