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

// ErrJournalBehind reports a ticket file at a version its journal does not
// reach: the journal was cut, replaced or deleted since. Nothing is
// changed; Store.Repair continues the sale from the ticket file, whose
// count it keeps. Errors wrapping it also wrap ErrJournal.
var ErrJournalBehind = errors.New("journal is behind the ticket file")

// ErrTicketFileMissing reports a sale whose ticket file is gone while its
// journal holds records (moved or deleted): the sale exists, and starting
// it again would sell its tickets twice. Store.Repair rebuilds the ticket
// file from the journal. Errors wrapping it also wrap ticket.ErrInvalid.
var ErrTicketFileMissing = errors.New("ticket file is missing but its journal holds records")
