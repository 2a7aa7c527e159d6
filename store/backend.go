package store

import (
	"context"
	"iter"
	"time"

	"github.com/ticketd/ticket/ticket"
)

// Backend is one ticket sale, wherever it is kept: a ticket file (Store)
// or a Redis server (package store/redis). Every method may be called from
// many processes at once; within one process, from many goroutines.
type Backend interface {
	// Read returns the current state without waiting for any lock.
	Read() (ticket.State, error)
	// Buy sells qty tickets to buyer if at least qty are left, all or
	// nothing; ticket.ErrSoldOut (with the Receipt's State) if fewer are.
	Buy(ctx context.Context, buyer string, qty int64) (Receipt, error)
	// Init creates the sale with n tickets. An existing sale is refused
	// with ErrExists (Create) or reset (Replace), its journal kept under
	// the returned archive name.
	Init(ctx context.Context, n int64, mode Mode) (state ticket.State, archive string, err error)
	// Verify checks that the state and the journal balance.
	Verify(ctx context.Context) (Report, error)
	// Sales yields the journal's records in order.
	Sales() iter.Seq2[ticket.Record, error]
	// Restore replaces the sale with state and its journal's records: a
	// copy of another sale. An existing sale is refused with ErrExists
	// (Create) or replaced (Replace), its journal archived, never deleted.
	Restore(ctx context.Context, state ticket.State, records []ticket.Record, mode Mode) (archive string, err error)
	// Repair brings a damaged sale back to where buying can go on, never
	// selling a ticket twice.
	Repair(ctx context.Context) (Repaired, error)
	// Close releases what the backend holds (connections).
	Close() error
}

var _ Backend = (*Store)(nil)

// Booking is a sale's holds, confirms, releases, returns, restocks and
// per-buyer limit, wherever it is kept: a ticket file (Store) or a Redis
// server (package store/redis). Both backends give the same answers and
// the same sentinel errors: ticket.ErrSoldOut, ticket.ErrLimit,
// ticket.ErrHoldLapsed, ticket.ErrUnknownHold, ticket.ErrUnknownSale,
// ticket.ErrReturn, ticket.ErrQuantity, ErrConfirmed, ErrNoLimit and
// ErrDuration (see Store's methods for when).
type Booking interface {
	// InitLimit is Init with a per-buyer limit of limit tickets (0: none).
	InitLimit(ctx context.Context, n, limit int64, mode Mode) (state ticket.State, archive string, err error)
	// Hold takes qty tickets out of the stock into held for buyer, for d.
	Hold(ctx context.Context, buyer string, qty int64, d time.Duration) (HoldReceipt, error)
	// Confirm turns an open hold into a sale; a hold confirmed already
	// returns its first confirm.
	Confirm(ctx context.Context, id string) (Receipt, error)
	// Release gives an open hold's tickets back to the stock.
	Release(ctx context.Context, id string) (ticket.Record, error)
	// Return gives back qty tickets (0: all it still has) of sale number sale.
	Return(ctx context.Context, sale, qty int64) (ticket.Record, error)
	// Restock adds delta tickets to the stock (delta > 0) or removes -delta.
	Restock(ctx context.Context, delta int64) (ticket.Record, ticket.State, error)
	// SetLimit changes the per-buyer limit of a sale started with one.
	SetLimit(ctx context.Context, k int64) (ticket.Record, ticket.State, error)
}

var _ Booking = (*Store)(nil)

// Mode says whether Init and Restore may replace a sale that exists.
type Mode int

// The modes of Init and Restore.
const (
	Create  Mode = iota // refuse a sale that exists, with ErrExists
	Replace             // replace it; its journal is archived, never deleted
)

// Receipt is the outcome of a buy.
type Receipt struct {
	Sale  ticket.Record // the sale made; zero when nothing was bought
	State ticket.State  // the state after the buy, or the one that refused it

	// Replayed is set when the buy's request id had already been answered:
	// this is that original outcome, and nothing was sold now (Redis only).
	Replayed bool
}

// Report is what Verify found.
type Report struct {
	State         ticket.State    // the sale as it now is: the ticket file, as the journal explains it
	ticket.Counts                 // the journal's records, by kind (and the records the next buy writes)
	Booked        ticket.Bookings // what its holds, confirms, releases, returns and removals did
	Pending       string          // what the next buy completes, records or cuts; "" if nothing
	Problems      []string        // every discrepancy found; empty when the books balance
}

// Balanced reports whether the books balance.
func (r Report) Balanced() bool { return len(r.Problems) == 0 }

// Repaired is what Repair did.
type Repaired struct {
	State   ticket.State // the sale as it now is
	Sales   int64        // the records the state was rebuilt from; 0 if it was not rebuilt
	Kept    string       // where the damaged ticket file (or state) was moved; "" if it was not
	Archive string       // where a journal behind the ticket file was moved; "" if none was
	Note    string       // what was settled besides, in one line; "" if nothing
}
