package ticket

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// Books returns the state the record leaves the sale in: its left, held
// and total, sold the rest, at version Seq. It needs the record's total,
// and reports false for a sale written before totals were recorded. The
// held tickets and limit are the ticket file's to say (see
// State.WithBookingOf).
func (s Record) Books() (State, bool) {
	if s.Kind == KindSale && s.Total == 0 {
		return State{}, false // a sale takes at least 1: 0 is "not recorded"
	}
	st, err := At(s.Seq, s.Left, s.Total)
	if err != nil || s.Held > st.sold {
		return State{}, false
	}
	st.held, st.sold = s.Held, st.sold-s.Held
	if s.Kind == KindInit {
		st.limit = s.Limit
	}
	return st, true
}

// Apply returns the state after record r, which must follow s: its
// sequence number is the next, its tickets are there to take (or its
// restock fits in int64), its hold is open (confirm, release), and its
// left, held and total are what they make. The result keeps s's unknown
// members. An init record does not follow anything: Apply refuses it.
func (s State) Apply(r Record) (State, error) {
	if r.Kind == KindInit {
		return s, invalidf("%s record #%d in the middle of the journal", r.Kind, r.Seq)
	}
	next, got, err := s.Next(r)
	switch {
	case err != nil && (r.Kind == KindSale || r.Kind == KindOutside):
		return s, fmt.Errorf("record #%d takes %d of %d left: %w", r.Seq, r.Qty, s.left, err)
	case err != nil:
		return s, fmt.Errorf("%s record #%d: %w", r.Kind, r.Seq, err)
	case r.Seq != got.Seq:
		return s, invalidf("record #%d follows version %d", r.Seq, s.version)
	case r.Left != got.Left:
		return s, invalidf("record #%d says %d left, but %d left minus its %d is %d", r.Seq, r.Left, s.left, r.Taken(), got.Left)
	case r.Total != 0 && r.Total != got.Total:
		return s, invalidf("record #%d says total %d, but it follows total %d", r.Seq, r.Total, s.total)
	case r.Held != got.Held:
		return s, invalidf("record #%d says %d held, but it follows %d held", r.Seq, r.Held, s.held)
	case r.Buyer != got.Buyer || r.Qty != got.Qty:
		return s, invalidf("%s record #%d says %s's %d, but hold %s is %s's %d", r.Kind, r.Seq, r.Buyer, r.Qty, r.Hold, got.Buyer, got.Qty)
	}
	return next, nil
}

// Reconcile brings the books, the state the journal says the sale is in,
// into line with the ticket file's "count" (file.Left()), which is always
// the tickets left: any process following the lock protocol may change it.
// A count lower than the books' is a sale made outside ticket, a higher one
// stock added by hand; either is returned as a record at the next version
// (ok true), and the state after it. A count that matches returns the
// books as they are (ok false). The state keeps the ticket file's unknown
// members either way.
func Reconcile(books, file State, now time.Time) (State, Record, bool) {
	return reconcile(books, file, books.left-file.left, now)
}

// reconcile is Reconcile of a difference d, the tickets the books have
// beyond the ticket file's count.
func reconcile(books, file State, d int64, now time.Time) (State, Record, bool) {
	books.extra = file.extra
	books.stored = true
	if d == 0 || books.version == math.MaxInt64 {
		return books, Record{}, false
	}
	r := Record{Kind: KindOutside, Qty: d, Time: now.UTC()}
	if d < 0 {
		r.Kind, r.Qty = KindRestock, -d
	}
	next, r, err := books.Next(r)
	if err != nil {
		return books, Record{}, false // beyond int64: left for a ledger to report
	}
	return next, r, true
}

// RollForward brings the books at the ticket file's version (anchor) up to
// date with records the journal holds beyond it (beyond, committed: a
// power cut kept them and lost the ticket file's replacement, or the
// ticket file was put back to an older version), and with the change
// another process made to the file's count since that version. That
// change is the anchor's left minus file.Left(): tickets taken (or stock
// added) by a buyer following the lock protocol on the file as it found
// it. It is kept, as Reconcile would, as a record after the rolled ones.
//
// When the other process took more tickets than the rolled records left,
// the same tickets were sold twice, by ticket's records and by the other
// process, each from its own version of the sale: RollForward refuses it
// with an *OversoldError rather than drop either sale from the books.
func RollForward(anchor State, beyond []Record, file State, now time.Time) (State, Record, bool, error) {
	d := anchor.left - file.left
	state := anchor
	for _, r := range beyond {
		next, err := state.Apply(r)
		if err != nil {
			return anchor, Record{}, false, err
		}
		state = next
	}
	if d > state.left {
		return state, Record{}, false, &OversoldError{By: d - state.left, Taken: d, From: beyond[0].Seq, To: beyond[len(beyond)-1].Seq, Books: state}
	}
	next, r, ok := reconcile(state, file, d, now)
	return next, r, ok, nil
}

// OversoldError is RollForward's refusal: another process took Taken
// tickets from a ticket file that did not show the committed records From
// to To, after which Books (the books with those records) had fewer left,
// so By tickets were sold twice.
type OversoldError struct {
	By, Taken int64
	From, To  int64
	Books     State
}

func (e *OversoldError) Error() string {
	recs := fmt.Sprintf("records #%d to #%d", e.From, e.To)
	if e.From == e.To {
		recs = fmt.Sprintf("record #%d", e.From)
	}
	return fmt.Sprintf("%d %s sold twice: another process took %d %s from a ticket file that did not show %s of the journal, after which %d %s left",
		e.By, plural(e.By, "ticket was", "tickets were"), e.Taken, plural(e.Taken, "ticket", "tickets"), recs, e.Books.left, plural(e.Books.left, "was", "were"))
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Unwrap makes errors.Is(err, ErrInvalid) true: the sale cannot go on as it is.
func (e *OversoldError) Unwrap() error { return ErrInvalid }

// A Ledger checks a journal's records one at a time, in order, as Verify
// and Repair read them: sequence numbers running up by one, each record's
// "left", "held" and "total" following from the one before, every confirm
// and release naming an open hold, every return a sale that still has the
// tickets, and no buyer above the sale's limit. Check then matches the end
// against the state the sale is in; Books says what state the records
// leave. The zero Ledger is ready for the first record.
type Ledger struct {
	n        int    // records seen
	last     Record // the last record seen
	left     int64  // tickets left after the records so far
	held     int64  // tickets in open holds after the records so far
	total    int64  // the total after the records so far, when known
	known    bool   // total is known: an init record, or a record that carries it
	left0    int64  // tickets left before the first record
	restock  int64  // tickets added (less those removed) by the records so far
	presold  int64  // tickets sold before the journal began (an init record says)
	limit    int64  // the per-buyer limit, from the init record
	counts   Counts
	booked   Bookings
	problems []string

	holds   map[string]Hold    // open holds by id
	sales   map[int64]saleLeft // sales (and confirms) by number, with what is not yet returned
	holders map[string]int64   // with a limit, each buyer's tickets
}

// saleLeft is a sale as a return sees it.
type saleLeft struct {
	buyer string
	qty   int64
}

// Counts are what a journal's records did, by kind.
type Counts struct {
	Sales   int64 // sales (records of kind sale)
	Tickets int64 // tickets those sales took
	Outside int64 // tickets taken outside ticket
	Added   int64 // tickets added outside ticket (restock records)
}

// Bookings are what a journal's booking records did, in tickets.
type Bookings struct {
	Holds     int64 // tickets held
	Confirmed int64 // tickets held, then confirmed: sold
	Confirms  int64 // confirm records: each a sale, of a hold
	Released  int64 // tickets held, then released by the holder
	Lapsed    int64 // tickets held, then lapsed
	Returned  int64 // tickets returned
	Removed   int64 // tickets taken out of the stock by the seller
	Restocked int64 // tickets added by the seller through ticket (add records; not counted in Counts.Added)
}

// Counts returns what the records so far did.
func (l *Ledger) Counts() Counts { return l.counts }

// Bookings returns what the booking records so far did.
func (l *Ledger) Bookings() Bookings { return l.booked }

// sold returns the tickets the records sold and did not take back.
func (l *Ledger) sold() int64 {
	return l.counts.Tickets + l.booked.Confirmed - l.booked.Returned + l.counts.Outside
}

// OpenHolds returns the holds the records so far leave open, soonest to
// expire first.
func (l *Ledger) OpenHolds() []Hold {
	out := slices.Collect(maps.Values(l.holds))
	slices.SortFunc(out, compareHolds)
	return out
}

// Holders returns, in a sale with a limit, each buyer's tickets after the
// records so far (bought and not returned, plus held; see Record.Holding),
// buyers with none left out. The caller must not modify the map.
func (l *Ledger) Holders() map[string]int64 { return l.holders }

// Problems returns every discrepancy found so far, one line each; none
// when the books balance.
func (l *Ledger) Problems() []string { return l.problems }

// Len returns the number of records added.
func (l *Ledger) Len() int { return l.n }

// Problem records a discrepancy found outside the records themselves (a
// line that is not a record, say).
func (l *Ledger) Problem(format string, args ...any) {
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

// Add checks the next record of the journal.
func (l *Ledger) Add(rec Record) {
	defer func() { l.n++; l.last = rec }()
	if l.holds == nil {
		l.holds, l.sales, l.holders = map[string]Hold{}, map[int64]saleLeft{}, map[string]int64{}
	}
	if rec.Kind == KindInit {
		if l.n > 0 {
			l.Problem("record #%d: an init record in the middle of the journal", rec.Seq)
		}
		l.left, l.total, l.known = rec.Left, rec.Total, true
		l.left0, l.presold = rec.Left, rec.Total-rec.Left
		l.limit = rec.Limit
		return
	}
	if l.n == 0 {
		// A journal written before init records: the books before its
		// first record follow from that record.
		l.left = rec.Left + rec.Taken()
		l.left0 = l.left
		if rec.Total != 0 {
			l.total, l.known = rec.Total-rec.Stocked(), true
		}
	} else if rec.Seq != l.last.Seq+1 {
		l.Problem("record #%d follows record #%d: sequence numbers must run up by one without gaps or repeats", rec.Seq, l.last.Seq)
	}
	l.left -= rec.Taken()
	switch rec.Kind {
	case KindSale:
		l.counts.Sales++
		l.counts.Tickets += rec.Qty
		l.sales[rec.Seq] = saleLeft{rec.Buyer, rec.Qty}
		l.hold(rec, rec.Qty)
	case KindOutside:
		l.counts.Outside += rec.Qty
	case KindRestock:
		l.counts.Added += rec.Qty
		l.restock += rec.Qty
		l.total += rec.Qty
	case KindAdd:
		l.booked.Restocked += rec.Qty
		l.restock += rec.Qty
		l.total += rec.Qty
	case KindRemove:
		l.booked.Removed += rec.Qty
		l.restock -= rec.Qty
		l.total -= rec.Qty
	case KindHold:
		l.booked.Holds += rec.Qty
		l.held += rec.Qty
		l.holds[rec.Hold] = Hold{ID: rec.Hold, Buyer: rec.Buyer, Qty: rec.Qty, Expires: rec.Expires.UTC()}
		l.hold(rec, rec.Qty)
	case KindConfirm, KindRelease:
		h, ok := l.holds[rec.Hold]
		switch {
		case !ok:
			l.Problem("record #%d: %s of hold %s, which is not open", rec.Seq, rec.Kind, rec.Hold)
		case h.Buyer != rec.Buyer || h.Qty != rec.Qty:
			l.Problem("record #%d: %s of hold %s says %s's %d, but the hold is %s's %d", rec.Seq, rec.Kind, rec.Hold, rec.Buyer, rec.Qty, h.Buyer, h.Qty)
		}
		delete(l.holds, rec.Hold)
		l.held -= rec.Qty
		switch {
		case rec.Kind == KindConfirm:
			l.booked.Confirmed += rec.Qty
			l.booked.Confirms++
			l.sales[rec.Seq] = saleLeft{rec.Buyer, rec.Qty}
		case rec.Reason == ReasonLapsed:
			if ok && !rec.Time.IsZero() && rec.Time.Before(h.Expires) {
				l.Problem("record #%d: hold %s recorded as lapsed at %s, before it expired at %s", rec.Seq, rec.Hold, rec.Time.UTC().Format(time.RFC3339Nano), h.Expires.UTC().Format(time.RFC3339Nano))
			}
			l.booked.Lapsed += rec.Qty
			l.hold(rec, -rec.Qty)
		default:
			l.booked.Released += rec.Qty
			l.hold(rec, -rec.Qty)
		}
	case KindLimit:
		l.limit = rec.Limit
		for name, n := range l.holders {
			if n > rec.Limit {
				l.Problem("record #%d: a limit of %d is below the %d %s has", rec.Seq, rec.Limit, n, name)
			}
		}
	case KindReturn:
		l.booked.Returned += rec.Qty
		sale, ok := l.sales[rec.Sale]
		switch {
		case !ok:
			l.Problem("record #%d: return of sale #%d, which is not a sale of the journal", rec.Seq, rec.Sale)
		case sale.buyer != rec.Buyer:
			l.Problem("record #%d: return of sale #%d names %s, but %s bought it", rec.Seq, rec.Sale, rec.Buyer, sale.buyer)
		case rec.Qty > sale.qty:
			l.Problem("record #%d: return of %d of sale #%d, which has %d", rec.Seq, rec.Qty, rec.Sale, sale.qty)
		default:
			sale.qty -= rec.Qty
			l.sales[rec.Sale] = sale
		}
		l.hold(rec, -rec.Qty)
	}
	if rec.Left != l.left {
		l.Problem("record #%d says %d left, but the records before it leave %d, minus its %d, %d", rec.Seq, rec.Left, l.left+rec.Taken(), rec.Taken(), l.left)
		l.left = rec.Left
	}
	if rec.Held != l.held {
		l.Problem("record #%d says %d held, but the records before it leave %d held", rec.Seq, rec.Held, l.held)
		l.held = rec.Held
	}
	if rec.Total != 0 {
		if l.known && rec.Total != l.total {
			l.Problem("record #%d says total %d, but the records before it make %d", rec.Seq, rec.Total, l.total)
		}
		l.total, l.known = rec.Total, true
	}
}

// hold counts d more tickets for the record's buyer under the limit.
func (l *Ledger) hold(rec Record, d int64) {
	if l.limit == 0 {
		return
	}
	n := l.holders[rec.Buyer] + d
	if d > 0 && n > l.limit {
		l.Problem("record #%d: %s has %d tickets, more than the limit of %d", rec.Seq, rec.Buyer, n, l.limit)
	}
	if n > 0 {
		l.holders[rec.Buyer] = n
	} else {
		delete(l.holders, rec.Buyer)
	}
}

// Check matches the end of the journal with st, the state the sale is in,
// naming the journal's last record and the state's holder as given in the
// problems it records: the last record is st's version and leaves st's
// tickets, the journal makes st's total, its open holds are st's, and the
// total is what is left plus what is held plus what was sold (and sold
// before the journal began).
func (l *Ledger) Check(st State, lastRecord, holder string) {
	if l.last.Seq != st.version && (l.n > 0 || st.version != 0) {
		l.Problem("%s is #%d but %s is at version %d", lastRecord, l.last.Seq, holder, st.version)
	}
	if l.n > 0 && l.last.Left != st.left {
		l.Problem("%s left %d but %s says %d", lastRecord, l.last.Left, holder, st.left)
	}
	if l.known && l.total != st.total {
		l.Problem("the journal makes the total %d but %s says %d", l.total, holder, st.total)
	}
	if l.held != st.held {
		l.Problem("the journal leaves %d held in %d holds but %s says %d held", l.held, len(l.holds), holder, st.held)
	}
	if l.limit != st.limit && l.n > 0 {
		l.Problem("the journal sets a limit of %d but %s says %d", l.limit, holder, st.limit)
	}
	sold := l.sold() + l.presold
	switch {
	case st.total == st.left+st.held+sold:
	case st.held == 0:
		l.Problem("total %d is not the %d left plus the %d sold in the journal", st.total, st.left, sold)
	default:
		l.Problem("total %d is not the %d left plus the %d held plus the %d sold in the journal", st.total, st.left, st.held, sold)
	}
}

// Books returns the state the records leave the sale in, at the last
// one's version, for rebuilding a state from its journal: its held
// tickets and limit too (the open holds are OpenHolds). It refuses a journal whose records do not balance
// (its first problem), that holds no record, or whose numbers make no
// state; its errors wrap ErrInvalid.
func (l *Ledger) Books() (State, error) {
	switch {
	case len(l.problems) > 0:
		return State{}, invalidf("%s", l.problems[0])
	case l.n == 0:
		return State{}, invalidf("no records")
	}
	total := l.total
	if !l.known {
		total = l.left0 + l.restock // a journal from before totals were recorded
	}
	if l.left < 0 || l.left > total || l.held < 0 || l.held > total-l.left {
		return State{}, invalidf("%d left and %d held of %d", l.left, l.held, total)
	}
	st, err := At(l.last.Seq, l.left, total)
	if err != nil {
		return st, err
	}
	st.held, st.sold = l.held, st.sold-l.held
	st.limit = l.limit
	return st, nil
}
