package ticket

import (
	"fmt"
	"math"
	"time"
)

// Books returns the state the record leaves the sale in: its left and
// total, sold the difference, at version Seq. It needs the record's total,
// and reports false for a sale written before totals were recorded.
func (s Record) Books() (State, bool) {
	if s.Kind == KindSale && s.Total == 0 {
		return State{}, false // a sale takes at least 1: 0 is "not recorded"
	}
	st, err := At(s.Seq, s.Left, s.Total)
	return st, err == nil
}

// Apply returns the state after record r, which must follow s: its
// sequence number is the next, its tickets are there to take (or its
// restock fits in int64), and its left and total are what they make. The
// result keeps s's unknown members. An init record does not follow
// anything: Apply refuses it.
func (s State) Apply(r Record) (State, error) {
	next := s
	next.stored = true
	switch r.Kind {
	case KindSale, KindOutside:
		var err error
		if next, err = s.Take(r.Qty); err != nil {
			return s, fmt.Errorf("record #%d takes %d of %d left: %w", r.Seq, r.Qty, s.left, err)
		}
	case KindRestock:
		if r.Qty > math.MaxInt64-s.total {
			return s, invalidf("restock #%d of %d makes the total beyond int64", r.Seq, r.Qty)
		}
		next.left += r.Qty
		next.total += r.Qty
		next.version++
	default:
		return s, invalidf("%s record #%d in the middle of the journal", r.Kind, r.Seq)
	}
	switch {
	case r.Seq != next.version:
		return s, invalidf("record #%d follows version %d", r.Seq, s.version)
	case r.Left != next.left:
		return s, invalidf("record #%d says %d left, but %d left minus its %d is %d", r.Seq, r.Left, s.left, r.Taken(), next.left)
	case r.Total != 0 && r.Total != next.total:
		return s, invalidf("record #%d says total %d, but it follows total %d", r.Seq, r.Total, s.total)
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
	r := Record{Seq: books.version + 1, Kind: KindOutside, Qty: d, Time: now.UTC()}
	if d < 0 {
		r.Kind, r.Qty = KindRestock, -d
	}
	r.Left = books.left - r.Taken()
	r.Total = books.total
	if r.Kind == KindRestock {
		r.Total += r.Qty
	}
	next, err := books.Apply(r)
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
// "left" and "total" following from the one before. Check then matches
// the end against the state the sale is in; Books says what state the
// records leave. The zero Ledger is ready for the first record.
type Ledger struct {
	n        int    // records seen
	last     Record // the last record seen
	left     int64  // tickets left after the records so far
	total    int64  // the total after the records so far, when known
	known    bool   // total is known: an init record, or a record that carries it
	left0    int64  // tickets left before the first record
	restock  int64  // tickets added by the records so far
	presold  int64  // tickets sold before the journal began (an init record says)
	counts   Counts
	problems []string
}

// Counts are what a journal's records did, by kind.
type Counts struct {
	Sales   int64 // sales (records of kind sale)
	Tickets int64 // tickets those sales took
	Outside int64 // tickets taken outside ticket
	Added   int64 // tickets added outside ticket
}

// Counts returns what the records so far did.
func (l *Ledger) Counts() Counts { return l.counts }

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
	if rec.Kind == KindInit {
		if l.n > 0 {
			l.Problem("record #%d: an init record in the middle of the journal", rec.Seq)
		}
		l.left, l.total, l.known = rec.Left, rec.Total, true
		l.left0, l.presold = rec.Left, rec.Total-rec.Left
		return
	}
	if l.n == 0 {
		// A journal written before init records: the books before its
		// first record follow from that record.
		l.left = rec.Left + rec.Taken()
		l.left0 = l.left
		if rec.Total != 0 {
			l.total, l.known = rec.Total, true
			if rec.Kind == KindRestock {
				l.total -= rec.Qty
			}
		}
	} else if rec.Seq != l.last.Seq+1 {
		l.Problem("record #%d follows record #%d: sequence numbers must run up by one without gaps or repeats", rec.Seq, l.last.Seq)
	}
	l.left -= rec.Taken()
	switch rec.Kind {
	case KindSale:
		l.counts.Sales++
		l.counts.Tickets += rec.Qty
	case KindOutside:
		l.counts.Outside += rec.Qty
	case KindRestock:
		l.counts.Added += rec.Qty
		l.restock += rec.Qty
		l.total += rec.Qty
	}
	if rec.Left != l.left {
		l.Problem("record #%d says %d left, but the records before it leave %d, minus its %d, %d", rec.Seq, rec.Left, l.left+rec.Taken(), rec.Taken(), l.left)
		l.left = rec.Left
	}
	if rec.Total != 0 {
		if l.known && rec.Total != l.total {
			l.Problem("record #%d says total %d, but the records before it make %d", rec.Seq, rec.Total, l.total)
		}
		l.total, l.known = rec.Total, true
	}
}

// Check matches the end of the journal with st, the state the sale is in,
// naming the journal's last record and the state's holder as given in the
// problems it records: the last record is st's version and leaves st's
// tickets, the journal makes st's total, and the total is what is left
// plus what was sold (and sold before the journal began).
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
	sold := l.counts.Tickets + l.counts.Outside + l.presold
	if st.total != st.left+sold {
		l.Problem("total %d is not the %d left plus the %d sold in the journal", st.total, st.left, sold)
	}
}

// Books returns the state the records leave the sale in, at the last
// one's version, for rebuilding a state from its journal. It refuses a
// journal whose records do not balance (its first problem), that holds no
// record, or whose numbers make no state; its errors wrap ErrInvalid.
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
	if l.left < 0 || l.left > total {
		return State{}, invalidf("%d left of %d", l.left, total)
	}
	return At(l.last.Seq, l.left, total)
}
