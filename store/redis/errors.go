package redis

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// ErrRequestID reports a request id that CheckRequestID refuses: a
// mistake of the caller's, not a sale that is refused.
var ErrRequestID = errors.New("invalid request id")

// ErrForeignRecord reports a journal to copy into Redis that holds records
// of changes made outside ticket (kinds outside and restock: a
// cooperating buyer's sales, stock added): a Redis journal holds ticket's
// sales only, and its Verify would not balance them, so Restore refuses
// the copy whole.
var ErrForeignRecord = errors.New("a Redis journal holds ticket's own sales only")

// dialError is a connection that could not be made: nothing was sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// RequestMismatchError is a request id already used for another buy (a
// different buyer or quantity) in the same sale: the retry is refused,
// since the id answers only for the buy it was made for.
type RequestMismatchError struct {
	ID, Qty, Buyer string // the id, and the buy it was first used for
}

func (e *RequestMismatchError) Error() string {
	return fmt.Sprintf("request id %s was used for buyer %q, %s %s: it answers only for that buy (the same buyer and quantity)", e.ID, e.Buyer, e.Qty, plural(e.Qty))
}

// OutcomeUnknownError is a buy that was sent to the server but whose
// answer never came back (the connection dropped, the read timed out, or
// the caller was interrupted while waiting): the server may or may not
// have made the sale. The same buy (buyer, quantity) with the same request
// id, sent again, answers which, and never buys twice. It wraps
// store.ErrUnreachable and the cause.
type OutcomeUnknownError struct {
	Server, Sale string // the server's address and the sale's name
	RequestID    string
	Buyer        string
	Qty          int64
	Err          error // why the answer was lost
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("redis %s sale %q: buy sent (request id %s, buyer %q, %d %s), outcome unknown: %v",
		e.Server, e.Sale, e.RequestID, e.Buyer, e.Qty, plural(strconv.FormatInt(e.Qty, 10)), e.Err)
}

// Unwrap returns store.ErrUnreachable and the cause.
func (e *OutcomeUnknownError) Unwrap() []error { return []error{store.ErrUnreachable, e.Err} }

// existsError is a sale that exists where a new one was to be made:
// store.ErrExists.
type existsError struct{ where string }

func (e *existsError) Error() string        { return e.where + " already exists" }
func (e *existsError) Is(target error) bool { return target == store.ErrExists }

// StateMissingError is a sale whose journal holds sales but whose state
// hash is gone (deleted, evicted, or not restored): the sale must not be
// started again as if it were new, which would sell its tickets twice.
// Repair rebuilds the state from the journal. It wraps ticket.ErrInvalid.
type StateMissingError struct {
	Where string // the server and sale, in words
	Sales int64  // entries in the journal
}

func (e *StateMissingError) Error() string {
	return fmt.Sprintf("%s: state missing; the journal holds %d %s (rebuild the state from it; starting the sale again would sell its tickets twice)",
		e.Where, e.Sales, map[bool]string{true: "sale", false: "sales"}[e.Sales == 1])
}

// Unwrap returns ticket.ErrInvalid.
func (e *StateMissingError) Unwrap() error { return ticket.ErrInvalid }

// interruptedError is a call abandoned because its context was cancelled
// (a signal): whatever it sent may still be run by the server.
type interruptedError struct{ err error }

func (e *interruptedError) Error() string { return "interrupted: " + e.err.Error() }
func (e *interruptedError) Unwrap() error { return e.err }

// notFoundError is a sale without a state or a journal: store.ErrNotFound.
type notFoundError struct{ where string }

func (e *notFoundError) Error() string        { return e.where + " does not exist (no state, no journal)" }
func (e *notFoundError) Is(target error) bool { return target == store.ErrNotFound }

// journalError is a journal that does not balance or cannot be read as
// one: store.ErrJournal and ticket.ErrInvalid.
type journalError struct{ where, problem string }

func (e *journalError) Error() string { return e.where + ": " + e.problem }
func (e *journalError) Is(target error) bool {
	return target == store.ErrJournal || target == ticket.ErrInvalid
}
