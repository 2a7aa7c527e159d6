package ticket

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// MaxFileSize is the largest ticket file Parse accepts. A real one is well
// under a hundred bytes; anything near this size is not a ticket file.
const MaxFileSize = 1 << 20

// State is one version of a sale: what the ticket file says. Its numbers
// are never negative. A State is made by New, At or Parse, and changed only
// by Take, Apply and Reconcile, each of which returns a new one: a State
// read from a file keeps the file's unknown members, which every new
// version of the ticket file writes back as they were.
//
// Left is the file's "count" member. The store adds "total", "sold" and
// "version" the first time it writes a file (a seed file {"count": 5} has
// none of them). In a state the store wrote, Total == Left + Held + Sold,
// unless another process changed "count" since (see Consistent).
type State struct {
	left    int64 // tickets left: the file's "count"
	total   int64 // tickets the sale started with, plus those added
	sold    int64 // tickets sold so far
	version int64 // sequence number of the last record, 0 for none

	// The booking members (see hold.go), each in the file only when used.
	held  int64 // tickets in open holds: the file's "held"
	limit int64 // the most tickets one buyer may have at once, 0 for none: "limit"

	extra  []member // members this package does not know, in file order
	stored bool     // the file had "version": it was written by the store
}

// Left returns the tickets left: the ticket file's "count".
func (s State) Left() int64 { return s.left }

// Total returns the size of the sale: the tickets it started with, plus
// those added since.
func (s State) Total() int64 { return s.total }

// Sold returns the tickets sold so far.
func (s State) Sold() int64 { return s.sold }

// Version returns the sequence number of the last record of the sale's
// journal the state includes, 0 for none.
func (s State) Version() int64 { return s.version }

// Stored reports whether the state was read from a file the store wrote
// (one with a "version" member), not from a seed file such as
// {"count": 5}. A sales journal can only belong to a stored file.
func (s State) Stored() bool { return s.stored }

// New returns the state of a fresh sale of n tickets.
func New(n int64) (State, error) {
	if n < 0 {
		return State{}, fmt.Errorf("%w: count %d is negative", ErrInvalid, n)
	}
	return State{left: n, total: n, stored: true}, nil
}

// At returns the state of a sale at version with left of total tickets
// left, sold the difference: the books as a journal record leaves them. It
// refuses, with an error wrapping ErrInvalid, numbers that cannot be a
// sale's: a negative version or total, left below 0 or above total.
func At(version, left, total int64) (State, error) {
	switch {
	case version < 0:
		return State{}, invalidf("version %d is negative", version)
	case left < 0:
		return State{}, invalidf("%d left is negative", left)
	case left > total:
		return State{}, invalidf("%d left is more than total %d", left, total)
	}
	return State{left: left, total: total, sold: total - left, version: version, stored: true}, nil
}

// WithMembersOf returns s with the members of file that this package does
// not know, which every new version of the ticket file keeps.
func (s State) WithMembersOf(file State) State {
	s.extra = file.extra
	return s
}

// Take is the buy rule: it returns the state after selling qty tickets, as
// one sale with the next version number. It is all or nothing: when fewer
// than qty are left it returns ErrSoldOut and s is unchanged; a qty below 1
// is ErrQuantity.
func (s State) Take(qty int64) (State, error) {
	if qty < 1 {
		return s, ErrQuantity
	}
	if qty > s.left {
		return s, ErrSoldOut
	}
	if s.version == math.MaxInt64 {
		return s, invalidf("version %d is the last there can be: no further sale fits", s.version)
	}
	next := s
	next.extra = s.extra // shared, never modified in place
	next.stored = true
	next.left -= qty
	next.sold += qty
	next.version++
	return next, nil
}

// Consistent reports whether Total == Left + Held + Sold: true for every
// state the store writes, false for a ticket file whose "count" another
// process changed since (see Reconcile).
func (s State) Consistent() bool { return s.total-s.sold-s.held == s.left }

// String describes the state for people: "4 left of 5 (1 sold)", and with
// tickets in holds "2 left of 5 (2 held, 1 sold)".
func (s State) String() string {
	if s.held != 0 {
		return fmt.Sprintf("%d left of %d (%d held, %d sold)", s.left, s.total, s.held, s.sold)
	}
	return fmt.Sprintf("%d left of %d (%d sold)", s.left, s.total, s.sold)
}

// Encode returns the ticket file's bytes for s: one JSON object on one line
// with "count", "total", "sold" and "version" first, then the booking
// members that are in use ("limit", "held"; see
// hold.go), then every member that Parse did not know, byte for byte as it
// was read. A sale that uses no holds and no limit has none of them.
func (s State) Encode() []byte {
	return s.AppendEncode(make([]byte, 0, 80))
}

// AppendEncode appends the encoding of s (see Encode) to b.
func (s State) AppendEncode(b []byte) []byte {
	b = append(b, `{"count": `...)
	b = strconv.AppendInt(b, s.left, 10)
	b = append(b, `, "total": `...)
	b = strconv.AppendInt(b, s.total, 10)
	b = append(b, `, "sold": `...)
	b = strconv.AppendInt(b, s.sold, 10)
	b = append(b, `, "version": `...)
	b = strconv.AppendInt(b, s.version, 10)
	b = s.appendBooking(b)
	for _, m := range s.extra {
		b = append(b, ", "...)
		b = append(b, m.rawKey...)
		b = append(b, ": "...)
		b = append(b, m.value...)
	}
	return append(b, "}\n"...)
}

// Parse reads a ticket file strictly. It accepts exactly one JSON object,
// optionally surrounded by white space, in valid UTF-8, of at most
// MaxFileSize bytes, and refuses with an error wrapping ErrInvalid:
//
//   - a byte order mark, empty input, truncated JSON or anything after the object;
//   - null, an array, a string or a number instead of an object;
//   - a missing or null "count", or one that is not a whole number written
//     as digits (5.0, 5e0 and "5" are refused; write 5), is negative or is
//     beyond int64;
//   - the same member twice, or two members whose names differ only in case
//     ({"count": 5, "COUNT": 100}), or "Count" instead of "count";
//   - "total", "sold" or "version" that are present but not whole numbers
//     from 0 up;
//   - in a file without "version" (a seed file, which the store never
//     wrote), a total that is not count + sold;
//   - booking members (see hold.go), "held" and "limit", without "total",
//     "sold" and "version".
//
// In a file with "version", "count" may differ from total minus sold:
// another process changed it under the lock, as the protocol allows. The
// state then holds the file's members as they are (Consistent is false);
// Reconcile turns the difference into a journal record.
func Parse(data []byte) (State, error) {
	if len(data) > MaxFileSize {
		return State{}, invalidf("file is larger than %d bytes", MaxFileSize)
	}
	members, err := parseObject(data, stateNames)
	if err != nil {
		return State{}, err
	}
	var s State
	var haveCount, haveTotal, haveSold bool
	for _, m := range members {
		var dst *int64
		switch m.key {
		case "count":
			dst, haveCount = &s.left, true
		case "total":
			dst, haveTotal = &s.total, true
		case "sold":
			dst, haveSold = &s.sold, true
		case "version":
			dst, s.stored = &s.version, true
		case "held", "limit":
			if err := s.parseBooking(m); err != nil {
				return State{}, err
			}
			continue
		default:
			s.extra = append(s.extra, m)
			continue
		}
		n, err := wholeNumber(m.key, m.value)
		if err != nil {
			return State{}, err
		}
		*dst = n
	}
	if !haveCount {
		return State{}, invalidf(`no "count" member`)
	}
	if err := s.checkBooking(haveTotal && haveSold); err != nil {
		return State{}, err
	}
	if s.stored && haveTotal && haveSold {
		// Written by the store: "total" and "sold" are its books as of
		// "version", and "count" is what another process may have changed
		// since, under the lock (a sale made outside ticket, or stock added
		// by hand). The store reconciles the two against the journal (see
		// Reconcile); here they only need to be whole numbers.
		return s, nil
	}
	switch {
	case haveTotal && haveSold:
		if s.total-s.sold != s.left {
			return State{}, invalidf("count %d is not total %d minus sold %d", s.left, s.total, s.sold)
		}
	case haveTotal:
		if s.total < s.left {
			return State{}, invalidf("count %d is more than total %d", s.left, s.total)
		}
		s.sold = s.total - s.left
	default:
		if s.sold > math.MaxInt64-s.left {
			return State{}, invalidf("count %d plus sold %d is beyond int64", s.left, s.sold)
		}
		s.total = s.left + s.sold
	}
	return s, nil
}

// wholeNumber decodes a JSON value that must be an integer from 0 to
// math.MaxInt64 written as plain digits.
func wholeNumber(key string, v []byte) (int64, error) {
	switch {
	case bytes.Equal(v, []byte("null")):
		return 0, invalidf("%q is null", key)
	case len(v) > 0 && v[0] == '"':
		return 0, invalidf("%q is a string (%s), not a number", key, clip(v))
	case len(v) > 0 && (v[0] == '{' || v[0] == '[' || v[0] == 't' || v[0] == 'f'):
		return 0, invalidf("%q is not a number: %s", key, clip(v))
	case len(v) > 0 && v[0] == '-':
		return 0, invalidf("%q is negative (%s)", key, clip(v))
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, invalidf("%q is not a whole number (%s): write it as digits only", key, clip(v))
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, invalidf("%q is beyond the largest count, %d (%s)", key, int64(math.MaxInt64), clip(v))
	}
	return n, nil
}

// clip shortens a value for an error message that must stay on one line.
func clip(v []byte) string {
	const most = 40
	if len(v) > most {
		return string(v[:most]) + "..."
	}
	return string(v)
}
