package ticket

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Hold is an open hold: Qty tickets kept for Buyer until Expires.
type Hold struct {
	ID      string    `json:"id"`
	Buyer   string    `json:"buyer"`
	Qty     int64     `json:"qty"`
	Expires time.Time `json:"expires"`
}

// Held returns the tickets in open holds: the ticket file's "held".
func (s State) Held() int64 { return s.held }

// Limit returns the most tickets one buyer may have at once (bought and
// not returned, plus held), 0 for no limit.
func (s State) Limit() int64 { return s.limit }

// WithLimit returns s with a per-buyer limit of k tickets (0: none). It
// refuses, with an error wrapping ErrLimit, a limit below most, the most
// tickets a buyer already has (bought and not returned, plus held), which
// the caller keeps (see Record.Holding).
func (s State) WithLimit(k, most int64) (State, error) {
	if k < 0 {
		return s, invalidf("limit %d is negative", k)
	}
	if k != 0 && most > k {
		return s, fmt.Errorf("a buyer already has %d tickets, more than a limit of %d: %w", most, k, ErrLimit)
	}
	s.limit = k
	return s, nil
}

// LimitApplies reports whether the limit rule has anything to say about a
// request for qty more tickets: the sale has a limit, and qty are left.
// Fewer left is sold out, whatever the limit, the answer every sale gives;
// a caller that would look a buyer's holding up first need not.
func (s State) LimitApplies(qty int64) bool { return s.limit != 0 && qty <= s.left }

// Allowed is the limit rule: buyer, who has have tickets (bought and not
// returned, plus held; see Record.Holding), may take qty more (buy or
// hold) unless the sale has a limit that it would pass (ErrLimit). Without
// a limit everything is allowed, and so is a request for more than are
// left (see LimitApplies).
func (s State) Allowed(buyer string, have, qty int64) error {
	if !s.LimitApplies(qty) {
		return nil
	}
	if qty > s.limit-have {
		return fmt.Errorf("%w: %s has %d of at most %d, wanted %d more", ErrLimit, buyer, have, s.limit, qty)
	}
	return nil
}

// NewHoldID returns the id of the hold recorded at seq: the sequence number,
// a dash and 8 random hex digits, so that the id of one sale's hold is not
// another sale's.
func NewHoldID(seq int64) string {
	return fmt.Sprintf("%d-%08x", seq, rand.Uint32())
}

// HoldSeq returns the sequence number of the record that opened the hold
// with id, and refuses (ErrUnknownHold) what is not a hold id.
func HoldSeq(id string) (int64, error) {
	num, suffix, ok := strings.Cut(id, "-")
	bad := !ok || len(suffix) != 8 || num == "" || len(num) > 19 || (num[0] == '0' && len(num) > 1)
	for _, c := range num {
		bad = bad || c < '0' || c > '9'
	}
	for _, c := range suffix {
		bad = bad || !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f')
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if bad || err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a hold id (like 12-0a1b2c3d): %w", clipString(id), ErrUnknownHold)
	}
	return n, nil
}

func clipString(s string) string { return clip([]byte(s)) }

// Lapse returns the state after each of expired, open holds that expired
// (its expiry not after now; the store finds them), is released as lapsed,
// and the release records, numbered from the next version.
func (s State) Lapse(expired []Hold, now time.Time) (State, []Record) {
	var records []Record
	for _, h := range expired {
		next, r, err := s.Next(Record{Kind: KindRelease, Hold: h.ID, Buyer: h.Buyer, Qty: h.Qty, Reason: ReasonLapsed, Time: now.UTC()})
		if err != nil {
			break // version cannot grow: the next writer reports it
		}
		s, records = next, append(records, r)
	}
	return s, records
}

// Next returns the state after r, which it completes: r's Seq is the next
// version, its Left, Held and Total what it leaves. Only its kind and what
// the kind names (hold, sale, buyer, qty, reason, expires, pid, time) need
// to be set. It refuses what cannot follow s: tickets that are not there
// (ErrSoldOut), a hold that is not open (ErrUnknownHold), a number beyond
// int64, and an init record; it does not check the limit (see Allowed),
// nor that a return's sale has the tickets (the journal says).
func (s State) Next(r Record) (State, Record, error) {
	switch r.Kind {
	case KindRestock, KindAdd, KindRemove, KindHold, KindReturn:
		if r.Qty < 1 {
			return s, r, ErrQuantity
		}
	}
	if s.version == math.MaxInt64 && r.Kind != KindSale && r.Kind != KindOutside { // Take says so for those
		return s, r, invalidf("version %d is the last there can be: no further record fits", s.version)
	}
	next := s
	next.stored = true
	next.version++
	r.Seq = next.version
	switch r.Kind {
	case KindSale, KindOutside:
		t, err := s.Take(r.Qty)
		if err != nil {
			return s, r, err
		}
		next = t
	case KindRestock, KindAdd:
		if r.Qty > math.MaxInt64-s.total {
			return s, r, invalidf("%s #%d of %d makes the total beyond int64", r.Kind, r.Seq, r.Qty)
		}
		next.left += r.Qty
		next.total += r.Qty
	case KindRemove:
		if r.Qty > s.left {
			return s, r, fmt.Errorf("%w: %d left, cannot remove %d", ErrSoldOut, s.left, r.Qty)
		}
		next.left -= r.Qty
		next.total -= r.Qty
	case KindHold:
		if r.Qty > s.left {
			return s, r, fmt.Errorf("%w: %d left, wanted %d", ErrSoldOut, s.left, r.Qty)
		}
		if r.Hold == "" {
			r.Hold = NewHoldID(r.Seq)
		}
		next.left -= r.Qty
		next.held += r.Qty
	case KindConfirm, KindRelease:
		// The hold is the caller's to find (the store keeps the open
		// holds): r names its buyer and qty.
		if r.Hold == "" || r.Qty < 1 || r.Qty > s.held {
			return s, r, fmt.Errorf("hold %s of %d is not open (%d held): %w", r.Hold, r.Qty, s.held, ErrUnknownHold)
		}
		h := Hold{ID: r.Hold, Buyer: r.Buyer, Qty: r.Qty}
		next.held -= h.Qty
		if r.Kind == KindConfirm {
			next.sold += h.Qty
		} else {
			next.left += h.Qty
		}
	case KindLimit:
		if s.limit == 0 || r.Limit < 1 {
			return s, r, invalidf("limit #%d: only a sale that has a limit changes it, to 1 or more", r.Seq)
		}
		next.limit = r.Limit // the caller checks no buyer has more (see WithLimit)
	case KindReturn:
		if r.Qty > s.sold {
			return s, r, invalidf("return #%d of %d is more than the %d sold", r.Seq, r.Qty, s.sold)
		}
		next.sold -= r.Qty
		next.left += r.Qty
	default:
		return s, r, invalidf("%s record #%d in the middle of the journal", r.Kind, r.Seq)
	}
	r.Left, r.Held, r.Total = next.left, next.held, next.total
	return next, r, nil
}

func compareHolds(a, b Hold) int {
	if c := a.Expires.Compare(b.Expires); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// appendBooking appends the booking members that are in use.
func (s State) appendBooking(b []byte) []byte {
	if s.limit != 0 {
		b = append(b, `, "limit": `...)
		b = strconv.AppendInt(b, s.limit, 10)
	}
	if s.held != 0 {
		b = append(b, `, "held": `...)
		b = strconv.AppendInt(b, s.held, 10)
	}
	return b
}

// parseBooking reads one booking member of the ticket file into s.
func (s *State) parseBooking(m member) error {
	switch m.key {
	case "held", "limit":
		n, err := wholeNumber(m.key, m.value)
		if err != nil {
			return err
		}
		if m.key == "held" {
			s.held = n
		} else {
			s.limit = n
		}
	}
	return nil
}

// checkBooking checks the booking members together, once all are read.
func (s *State) checkBooking(books bool) error {
	if s.held == 0 && s.limit == 0 {
		return nil
	}
	if !s.stored || !books {
		return invalidf(`"held" and "limit" go with "total", "sold" and "version"`)
	}
	return nil
}

// sameBooking reports whether a and b have the same booking members.
func sameBooking(a, b State) bool {
	return a.held == b.held && a.limit == b.limit
}

// WithBookingOf returns s with file's held tickets and limit, and sold what the rest of its total is: the books of a journal
// record are its numbers, and the ticket file at the same version says the
// rest.
func (s State) WithBookingOf(file State) State {
	s.held, s.limit = file.held, file.limit
	if sold := s.total - s.left - s.held; sold >= 0 {
		s.sold = sold
	}
	return s
}
