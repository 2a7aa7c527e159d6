// Package redisspec is what a program says of a Redis sale without the
// Redis client: whether a sale's name is a Redis URL, the URL to print
// (without its password), request ids, and the errors a Redis sale
// returns that a caller branches on. Package store/redis, which talks to
// the server, returns these errors and re-exports these names; a command
// line that only buys from files imports this package alone, and so links
// no Redis client.
package redisspec

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// PasswordEnv names the environment variable that gives the Redis password
// when the URL has none, so that it need not appear in URLs that ticket
// prints.
const PasswordEnv = "TICKET_REDIS_PASSWORD"

// IsURL reports whether spec is a Redis URL: redis://... or rediss://...
func IsURL(spec string) bool {
	return strings.HasPrefix(spec, "redis://") || strings.HasPrefix(spec, "rediss://")
}

// Redact returns u without its password (and without a user name that
// would be empty): the URL to print. The password is left out, not
// masked: the URL printed, run as it is, finds the password where it is
// given without one (PasswordEnv), where a mask would be sent as a
// wrong password.
func Redact(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	c := *u
	c.User = nil
	if name := u.User.Username(); name != "" {
		c.User = url.User(name)
	}
	return c.String()
}

// RedactURL returns spec, a Redis URL, without its password, to print
// (see Redact). A URL that does not parse is not printed at all.
func RedactURL(spec string) string {
	u, err := url.Parse(spec)
	if err != nil {
		return "(a Redis URL that does not parse)"
	}
	return Redact(u)
}

// HasPassword reports whether spec, a Redis URL, carries a password,
// which RedactURL leaves out: a command printed with the redacted URL
// needs the password in PasswordEnv.
func HasPassword(spec string) bool {
	u, err := url.Parse(spec)
	if err != nil || u.User == nil {
		return false
	}
	_, ok := u.User.Password()
	return ok
}

// ErrRequestID reports a request id that CheckRequestID refuses: a
// mistake of the caller's, not a sale that is refused.
var ErrRequestID = errors.New("invalid request id")

// CheckRequestID reports whether id may be used as a request id: 1 to 128
// letters, digits, '.', '_', ':' or '-'. Its error wraps ErrRequestID.
func CheckRequestID(id string) error {
	ok := len(id) >= 1 && len(id) <= 128
	for _, c := range []byte(id) {
		ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:-", c) >= 0)
	}
	if !ok {
		return fmt.Errorf("request id %q: want 1 to 128 letters, digits, '.', '_', ':' or '-': %w", id, ErrRequestID)
	}
	return nil
}

// NewRequestID returns a fresh random request id: 128 bits from
// math/rand/v2's generator, which the runtime seeds from the system's
// entropy in every process (crypto/rand would cost every ticket process
// the initialisation of the crypto packages; an id needs to be unique,
// not secret).
func NewRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// ErrForeignRecord reports a journal to copy into Redis that holds records
// of changes made outside ticket (kinds outside and restock: a
// cooperating buyer's sales, stock added): a Redis journal holds ticket's
// sales only, and its Verify would not balance them, so Restore refuses
// the copy whole.
var ErrForeignRecord = errors.New("a Redis journal holds ticket's own records only")

// RequestMismatchError is a request id already used for another buy (a
// different buyer or quantity) in the same sale: the retry is refused,
// since the id answers only for the buy it was made for.
type RequestMismatchError struct {
	ID, Qty, Buyer string // the id, and the buy it was first used for
}

func (e *RequestMismatchError) Error() string {
	return fmt.Sprintf("request id %s was used for buyer %q, %s %s: it answers only for that buy (the same buyer and quantity)", e.ID, e.Buyer, e.Qty, Tickets(e.Qty))
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
		e.Server, e.Sale, e.RequestID, e.Buyer, e.Qty, Tickets(strconv.FormatInt(e.Qty, 10)), e.Err)
}

// Unwrap returns store.ErrUnreachable and the cause.
func (e *OutcomeUnknownError) Unwrap() []error { return []error{store.ErrUnreachable, e.Err} }

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

// Tickets is "ticket" for a quantity of "1", else "tickets".
func Tickets(qty string) string {
	if qty == "1" {
		return "ticket"
	}
	return "tickets"
}
