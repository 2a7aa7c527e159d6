package cli

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"strconv"
	"strings"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redisspec"
	"github.com/ticketd/ticket/ticket"
)

// hinted is a sale whose errors come with what to type next: the library
// says what is wrong, and names no commands or flags; the command line
// adds the hint (see hint). Every sale a command opens is one.
type hinted struct {
	store.Backend
	c *cli

	requestID string // a Redis booking request's id, which a retry repeats
}

// Read is Backend.Read with hints.
func (h *hinted) Read() (ticket.State, error) {
	st, err := h.Backend.Read()
	return st, h.hint(err, "read")
}

// Buy is Backend.Buy with hints.
func (h *hinted) Buy(ctx context.Context, buyer string, qty int64) (store.Receipt, error) {
	r, err := h.Backend.Buy(ctx, buyer, qty)
	return r, h.hint(err, "buy")
}

// Init is Backend.Init with hints.
func (h *hinted) Init(ctx context.Context, n int64, mode store.Mode) (ticket.State, string, error) {
	st, archive, err := h.Backend.Init(ctx, n, mode)
	return st, archive, h.hint(err, "init")
}

// Verify is Backend.Verify with hints.
func (h *hinted) Verify(ctx context.Context) (store.Report, error) {
	r, err := h.Backend.Verify(ctx)
	return r, h.hint(err, "verify")
}

// Sales is Backend.Sales with hints.
func (h *hinted) Sales() iter.Seq2[ticket.Record, error] {
	return func(yield func(ticket.Record, error) bool) {
		for r, err := range h.Backend.Sales() {
			if !yield(r, h.hint(err, "read")) {
				return
			}
		}
	}
}

// Restore is Backend.Restore with hints.
func (h *hinted) Restore(ctx context.Context, state ticket.State, records []ticket.Record, mode store.Mode) (string, error) {
	archive, err := h.Backend.Restore(ctx, state, records, mode)
	return archive, h.hint(err, "restore")
}

// Repair is Backend.Repair with hints.
func (h *hinted) Repair(ctx context.Context) (store.Repaired, error) {
	r, err := h.Backend.Repair(ctx)
	return r, h.hint(err, "repair")
}

// hint adds to err what to type next, for the errors a user can act on,
// met doing op (read, buy, init, verify, restore, repair). It is the one
// place where the command line completes the library's errors.
func (h *hinted) hint(err error, op string) error {
	if err == nil {
		return nil
	}
	var add string
	if r, ok := h.Backend.(RedisSale); ok {
		add = redisHint(err, r, op)
		if add == "" && h.requestID != "" && errors.Is(err, store.ErrUnreachable) && strings.Contains(err.Error(), "outcome unknown") {
			add = "; to learn it, run the same ticket " + h.c.name + " again with --request-id " + h.requestID + passwordNote(r) + " (it never acts twice)"
		}
	} else if s, ok := h.Backend.(*store.Store); ok {
		add = fileHint(err, s, op)
	}
	if add == "" {
		return err
	}
	return &hintedError{err, add}
}

// hintedError is an error and what to do about it.
type hintedError struct {
	err  error
	hint string // with its own separator: " (...)" or "; ..."
}

func (e *hintedError) Error() string { return e.err.Error() + e.hint }
func (e *hintedError) Unwrap() error { return e.err }

// fileHint is hint for a ticket file.
func fileHint(err error, s *store.Store, op string) string {
	switch {
	case errors.Is(err, store.ErrTicketFileMissing) && errors.Is(err, store.ErrExists):
		return ": rebuild its ticket file with ticket repair (init --force would start a new sale and sell its tickets again; the old journal would be kept)"
	case errors.Is(err, store.ErrTicketFileMissing):
		return "; put it back, or rebuild it from the journal with ticket repair"
	case errors.Is(err, store.ErrExists):
		return " (use --force to reset it)"
	case errors.Is(err, store.ErrNotFound):
		if fi, lerr := os.Lstat(s.Path()); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			return "" // a dangling link: its target is what is missing
		}
		return " (create it with: ticket init --count N)"
	case errors.Is(err, store.ErrJournalBehind):
		return " (ticket repair keeps the ticket file's count and starts a new journal from it; after a rush --unlocked, which writes no journal, start the sale again instead with ticket init --count N --force)"
	case errors.As(err, new(*ticket.OversoldError)):
		return "; ticket repair records the sale as sold out, and says how many were sold twice"
	case errors.Is(err, store.ErrRefusedContent):
		return fmt.Sprintf(` (a program wrote it so, not a crash: ticket repair would undo that program's change, and does not rebuild a file it can read; write the tickets left as "count", with flock %s held)`, s.LockPath())
	case errors.Is(err, store.ErrDamaged) && journalHolds(s):
		return fmt.Sprintf(" (if a power cut damaged it, ticket repair rebuilds it from %s, as of its last record)", s.JournalPath())
	case op == "repair" && errors.Is(err, store.ErrJournal) && !journalHolds(s):
		return ": if the sale had none, start it again with ticket init --count N --force after moving the damaged file away"
	}
	return ""
}

// journalHolds reports whether the sale's journal holds anything.
func journalHolds(s *store.Store) bool {
	fi, err := os.Stat(s.JournalPath())
	return err == nil && fi.Size() > 0
}

// redisHint is hint for a Redis sale.
func redisHint(err error, r RedisSale, op string) string {
	var unknown *redisspec.OutcomeUnknownError
	var mismatch *redisspec.RequestMismatchError
	var missing *redisspec.StateMissingError
	at := "--store " + shellQuote(r.Redacted())
	pw := passwordNote(r)
	switch {
	case errors.As(err, &unknown):
		return "; to learn it, run the same buy again (it never buys twice)" + pw + ": " + retryCommand(r, unknown.Buyer, strconv.FormatInt(unknown.Qty, 10), unknown.RequestID)
	case errors.As(err, &mismatch):
		return "; to learn that buy's outcome, run" + pw + ": " + retryCommand(r, mismatch.Buyer, mismatch.Qty, mismatch.ID)
	case errors.As(err, &missing):
		return "; rebuild it with" + pw + ": ticket repair " + at + " (init --force would start the sale again and sell its tickets twice)"
	case errors.Is(err, store.ErrNotFound):
		return "; create it with" + pw + ": ticket init --count N " + at + "; if it existed, the server has lost it (a restart without persistence, a failover to an empty replica): restore it with ticket copy from a copy of it instead of starting it again"
	case errors.Is(err, redisspec.ErrForeignRecord):
		return "; to sell the rest from Redis, start a new sale there with what is left: ticket init --count N " + at + pw + " (the file keeps its books; ticket verify shows them)"
	case errors.Is(err, store.ErrExists) && op == "restore":
		return " (use --force to replace it)"
	case errors.Is(err, store.ErrExists):
		return " (use --force to reset it)"
	}
	return ""
}

// passwordNote says, for a sale whose URL carries a password, where the
// password goes to run a command ticket prints: ticket never prints it.
func passwordNote(r RedisSale) string {
	if !r.HasPassword() {
		return ""
	}
	return ", with the password in the environment variable " + redisspec.PasswordEnv + " (ticket prints no password)"
}

// retryCommand is the whole command that repeats a buy; with a password
// in the URL it runs with the password in redisspec.PasswordEnv.
func retryCommand(r RedisSale, buyer, qty, id string) string {
	return fmt.Sprintf("ticket buy --store %s --buyer %s --qty %s --request-id %s", shellQuote(r.Redacted()), shellQuote(buyer), qty, id)
}

// shellQuote quotes s for a POSIX shell where it needs it.
func shellQuote(s string) string {
	safe := s != ""
	for _, c := range s {
		safe = safe && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._:/-@=,+%", c))
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
