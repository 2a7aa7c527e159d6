package store

import "errors"

// ErrNotFound reports a ticket file that does not exist: the sale has not
// been created with Init (the command: ticket init).
var ErrNotFound = errors.New("no ticket file")

// ErrExists reports an Init over an existing ticket file without force.
var ErrExists = errors.New("ticket file exists")

// ErrLocked reports that the lock was not acquired before the context's
// deadline: another process holds it. It is not an I/O error.
var ErrLocked = errors.New("lock is held by another process")

// ErrUnconfirmed reports a sale that may stand although its buy failed:
// its line is in the journal, the ticket file could not be replaced, and
// taking the line back failed too (the next lock holder completes it), or
// a Restore whose final directory fsync failed. It must not be retried as
// if nothing had been bought.
var ErrUnconfirmed = errors.New("sale recorded but not confirmed durable")

// ErrJournal reports a sales journal that does not match the ticket file or
// cannot be read as one: the books do not balance. It is refused like an
// invalid ticket file, and nothing is changed. Errors wrapping it also wrap
// ticket.ErrInvalid.
var ErrJournal = errors.New("journal does not match the ticket file")
