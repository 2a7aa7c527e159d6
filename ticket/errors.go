package ticket

import (
	"errors"
	"fmt"
)

// ErrInvalid reports a ticket file or journal record that does not follow
// the format. Errors returned by Parse and ParseRecord wrap it, with the
// problem named in the message.
var ErrInvalid = errors.New("invalid")

// ErrSoldOut reports a buy asking for more tickets than are left.
var ErrSoldOut = errors.New("sold out")

// ErrQuantity reports a buy quantity below 1.
var ErrQuantity = errors.New("quantity must be at least 1")

// ErrBuyer reports a buyer name that CheckBuyer refuses: a mistake of the
// caller's, not a file that is refused.
var ErrBuyer = errors.New("invalid buyer name")

// FormatError is the error Parse and ParseRecord return for input that
// does not follow the format. It wraps ErrInvalid; its message names the
// problem in one line, for the caller to prefix with the file's name.
type FormatError struct {
	Problem string // what is wrong, in one line without the file's name

	// Unreadable is set when the input is not a JSON object at all:
	// empty, cut short, not UTF-8, bytes that are not JSON. That is what
	// a crash or a power cut may leave of a file being written, and what
	// rebuilding from a journal mends. A readable object whose members
	// are refused (a negative count, totals that do not add up) was
	// written so by someone: rebuilding it would undo what they did.
	Unreadable bool
}

// Error returns the problem.
func (e *FormatError) Error() string { return e.Problem }

// Unwrap makes errors.Is(err, ErrInvalid) true for every FormatError.
func (e *FormatError) Unwrap() error { return ErrInvalid }

func invalidf(format string, args ...any) error {
	return &FormatError{Problem: fmt.Sprintf(format, args...)}
}

// unreadablef is invalidf for input that is not a JSON object at all (see
// FormatError.Unreadable).
func unreadablef(format string, args ...any) error {
	return &FormatError{Problem: fmt.Sprintf(format, args...), Unreadable: true}
}

// ErrLimit reports a buy or hold that would give a buyer more tickets than
// the sale's per-buyer limit, or a limit below what a buyer already has.
var ErrLimit = errors.New("buyer limit reached")

// ErrHoldLapsed reports a confirm of a hold that expired or was released:
// its tickets went back to the stock.
var ErrHoldLapsed = errors.New("hold lapsed or released")

// ErrUnknownHold reports a hold id that names no hold of the sale.
var ErrUnknownHold = errors.New("no such hold")

// ErrUnknownSale reports a return naming no sale of the sale's journal.
var ErrUnknownSale = errors.New("no such sale")

// ErrReturn reports a return of more tickets than the sale still has.
var ErrReturn = errors.New("return is more than the sale has")
