package store

import (
	"errors"

	"github.com/ticketd/ticket/store/lock"
)

// ErrNotFound reports a sale that does not exist: a ticket file that has
// not been created with Init, a Redis sale without a state or a journal.
var ErrNotFound = errors.New("no ticket file")

// ErrExists reports an Init or a Restore, without Replace, of a sale that
// exists.
var ErrExists = errors.New("ticket file exists")

// ErrLocked reports that the lock was not acquired before the context's
// deadline, or at once with Options.NoWait: another process holds it. It
// is not an I/O error. It is lock.ErrLocked.
var ErrLocked = lock.ErrLocked

// ErrUnconfirmed reports a sale that may stand although its buy failed:
// its line is in the journal, the ticket file could not be replaced, and
// taking the line back failed too (the next lock holder completes it), or
// a Restore whose final directory fsync failed, or a Redis sale its
// replicas did not confirm. It must not be retried as if nothing had been
// bought.
var ErrUnconfirmed = errors.New("sale recorded but not confirmed durable")

// ErrUnreachable reports a backend's server that could not be reached,
// answered too late, refused the credentials or cannot take the sale's
// writes now. It never means "sold out"; the backend says whether anything
// may have been bought.
var ErrUnreachable = errors.New("backend unreachable")

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

// ErrDamaged reports a ticket file whose content does not parse, which a
// power cut may leave on a file system that does not keep renames atomic
// across a crash: Store.Repair rebuilds it from the journal. Errors
// wrapping it also wrap ticket.ErrInvalid.
var ErrDamaged = errors.New("ticket file does not parse")

// ErrRefusedContent reports a ticket file that reads as a JSON object but
// is refused for what it says (a negative count, totals that do not add up
// in a file without "version", a member twice): a program wrote it so; a
// crash did not. Store.Repair does not rebuild it, which would undo that
// program's change. Errors wrapping it also wrap ticket.ErrInvalid.
var ErrRefusedContent = errors.New("ticket file refused for what it says")

// ErrTicketFileMissing reports a sale whose ticket file is gone while its
// journal holds records (moved or deleted): the sale exists, and starting
// it again would sell its tickets twice. Store.Repair rebuilds the ticket
// file from the journal. The errors of reads and buys that wrap it also
// wrap ticket.ErrInvalid; those of Init and Restore wrap ErrExists.
var ErrTicketFileMissing = errors.New("ticket file is missing but its journal holds records")

// sentinelError is a sentinel error with a message that says it better:
// errors.Is matches the sentinels, and the message does not repeat them.
type sentinelError struct {
	msg       string
	sentinels []error
}

func (e *sentinelError) Error() string { return e.msg }

func (e *sentinelError) Is(target error) bool {
	for _, s := range e.sentinels {
		if target == s {
			return true
		}
	}
	return false
}
