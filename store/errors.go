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

// ErrUnconfirmed reports a sale that was committed (the ticket file was
// replaced and the journal holds it) but whose durability could not be
// confirmed, because the final directory fsync failed. The sale stands; it
// must not be retried as if nothing had been bought.
var ErrUnconfirmed = errors.New("sale recorded but not confirmed durable")

// ErrJournal reports a sales journal that does not match the ticket file or
// cannot be read as one: the books do not balance. It is refused like an
// invalid ticket file, and nothing is changed. Errors wrapping it also wrap
// ticket.ErrInvalid.
var ErrJournal = errors.New("journal does not match the ticket file")
