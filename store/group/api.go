package group

import (
	"context"
	"os"
	"time"

	"github.com/ticketd/ticket/ticket"
)

// Request is one request: a buy (Kind ticket.KindSale), a hold, a
// confirm, a release, or stock added or removed.
type Request struct {
	Kind    ticket.Kind   // ticket.KindSale, KindHold, KindConfirm, KindRelease, KindAdd or KindRemove
	Buyer   string        // a buy's or hold's buyer
	Qty     int64         // a buy's or hold's tickets, or the stock added or removed
	For     time.Duration // a hold's duration
	Hold    string        // a confirm's or release's hold id
	Durable bool          // its sale must be fsynced: a leader that skips fsync makes an exception for the batch that holds it
	NoWait  bool          // give up, withdrawing the request, if the lock is held when it is first tried
}

// Sale is what the file store gives group commit: the sale's lock and its
// transaction.
type Sale interface {
	// LockPath names the sale's lock file, for errors.
	LockPath() string
	// TryLock takes the sale's lock if it is free, without waiting.
	TryLock() (unlock func(), ok bool, err error)
	// Lock waits for the sale's lock until ctx is done, as lock.Lock does.
	Lock(ctx context.Context) (unlock func(), err error)
	// Commit runs the sale's transaction with the lock held: it reads and
	// settles the sale, calls b.Decide with the state and the journal,
	// commits the records it returns (fsynced if b.Durable), and, while
	// the journal is still locked, tells b.Done how the transaction ended.
	// It returns the transaction's error.
	Commit(b *Batch) error
}

// Journal is the sale's journal as a leader sees it, locked.
type Journal interface {
	// File is the open journal: a region serves one journal file.
	File() *os.File
	// Sales returns the journal's records numbered from..to of the kinds
	// group commit makes, by number.
	Sales(from, to int64) (map[int64]ticket.Record, error)
	// Holding returns what buyer has under the sale's per-buyer limit
	// (bought and not returned, plus held), with the records staged in
	// this transaction; 0 in a sale without a limit.
	Holding(buyer string) (int64, error)
	// Stage counts the record decided, not yet committed, in what Holding
	// returns for its buyer and in the open holds FindHold sees.
	Stage(r ticket.Record) error
	// FindHold returns the open hold id, with the records staged.
	FindHold(id string) (ticket.Hold, bool, error)
}

// Outcome is how a batch's transaction ended, as the file store tells
// Batch.Done.
type Outcome int

// The outcomes of a batch's transaction.
const (
	// Committed: the batch's records are in the journal and the ticket
	// file.
	Committed Outcome = iota
	// Failed: nothing of the batch stands; its requests are bought alone.
	Failed
	// Unconfirmed: the batch's records may stand (they are in the journal
	// beyond the ticket file, and taking them back failed): they are left
	// for the next leader to find in the journal or decide again.
	Unconfirmed
)
