package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/ticketd/ticket/ticket"
)

// Report is what Verify found.
type Report struct {
	State    ticket.State // the sale as it now is: the ticket file, as the journal explains it
	Sales    int64        // sales (records of kind sale) in the journal
	Tickets  int64        // tickets those sales took
	Outside  int64        // tickets taken outside ticket, as recorded (and pending)
	Added    int64        // tickets added outside ticket, as recorded (and pending)
	Pending  string       // what the next buy completes, records or cuts; "" if nothing
	Problems []string     // every discrepancy found; empty when the books balance
}

// Balanced reports whether the books balance.
func (r Report) Balanced() bool { return len(r.Problems) == 0 }

// Verify checks the sale without changing anything: the ticket file is
// valid; the journal's records run on from its first without gaps or
// repeats, each one's "left" and "total" following from the one before;
// total = left + the tickets sold (and sold before the journal began, as
// its init record says); and the journal's last committed record is the
// ticket file's version. It holds the lock (and the journal's) while it
// reads, so that it sees a ticket file and a journal that belong together.
//
// What the next writer settles is reported in Pending, not as a problem:
// records a crashed buyer left uncommitted (cut), records a reboot left
// committed beyond the ticket file (written), an unfinished last line
// (cut), and a count another process changed under the lock (recorded as
// taken or added outside ticket). These are counted as they will be.
//
// It returns an error only when it cannot check (the ticket file is missing
// or invalid, the lock is busy past ctx, I/O fails); an unbalanced journal
// is a Report with Problems.
func (s *Store) Verify(ctx context.Context) (Report, error) {
	f := s.files()
	var r Report
	_, info, err := readState(f.ticket) // for the lock file's permissions
	if err != nil {
		return r, err
	}
	unlock, err := Lock(ctx, f.lock, info.Mode().Perm())
	if err != nil {
		return r, err
	}
	defer unlock()
	if j, err := openExistingJournal(f.journal); err != nil {
		return r, err
	} else if j != nil {
		defer j.Close()
	}
	file, _, err := readState(f.ticket) // again: it may have changed while we waited
	if err != nil {
		return r, err
	}
	r.State = file
	st, serr := s.settleForVerify(f.journal, file)
	if serr != nil {
		r.Problems = append(r.Problems, serr.Error())
	} else {
		r.State = st.state
	}
	// The journal's committed end: the ticket file's version, or beyond
	// it by what a reboot left.
	limit := file.Version + int64(len(st.rolled))
	if !file.Stored() {
		limit = r.State.Version
	}
	l := newLedger(&r)
	for rec, err := range readRecords(f.journal) {
		if err != nil {
			var je *journalError
			if !errors.As(err, &je) || !je.unfinished {
				l.problem("%v", err)
			}
			break
		}
		if serr == nil && rec.Seq > limit {
			break // cut by the next buy: never committed
		}
		l.add(rec)
	}
	var pending []string
	if len(st.rolled) > 0 {
		pending = append(pending, describe(st.rolled)+" committed to the journal before a restart but not yet to the ticket file (the next buy writes them)")
	}
	if len(st.cut) > 0 {
		pending = append(pending, describe(st.cut)+" never committed: a buyer died before it replaced the ticket file (the next buy cuts them)")
	}
	if st.unfinished {
		pending = append(pending, "an unfinished last line was never committed (the next buy cuts it)")
	}
	if st.unversioned {
		pending = append(pending, `the ticket file has no "version" member (rewritten by another program?): it is taken as the journal's last record, and the next buy writes it whole`)
	}
	for _, rec := range st.add {
		if rec.Kind == ticket.KindInit {
			l.add(rec) // written with the first record: its books count
			continue
		}
		pending = append(pending, fmt.Sprintf("#%d: %s: another process changed the ticket file's count under the lock (the next buy records it)", rec.Seq, rec.Describe()))
		l.add(rec)
	}
	r.Pending = strings.Join(pending, "; ")
	l.finish("the journal's last record", "the ticket file")
	return r, nil
}

// settleForVerify is settle for Verify, which already holds the locks.
func (s *Store) settleForVerify(path string, file ticket.State) (settlement, error) {
	j, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return settleTail(path, file, nil, false, 0, 0, false, time.Now())
	}
	if err != nil {
		return settlement{}, ioError("open journal", path, err)
	}
	defer j.Close()
	info, err := j.Stat()
	if err != nil {
		return settlement{}, ioError("stat", path, err)
	}
	return settle(j, path, info.Size(), file, time.Now())
}

// openExistingJournal locks the journal at path, if there is one, as
// openJournal does, without creating it.
func openExistingJournal(path string) (*journal, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return openJournal(path, like{uid: -1}, true)
}

// ledger makes Verify's checks over a journal, one record at a time, into
// a Report: sequence numbers running up by one, each record's "left" and
// "total" following from the one before, and at the end the books
// matching the state.
type ledger struct {
	r        *Report
	n        int         // records seen
	last     ticket.Sale // the last record seen
	left     int64       // tickets left after the records so far
	total    int64       // the total after the records so far, when known
	known    bool        // total is known: an init record, or a record that carries it
	left0    int64       // tickets left before the first record
	restock  int64       // tickets added by the records so far
	presold  int64       // tickets sold before the journal began (an init record says)
	initSeen bool
}

func newLedger(r *Report) *ledger { return &ledger{r: r} }

func (l *ledger) problem(format string, args ...any) {
	l.r.Problems = append(l.r.Problems, fmt.Sprintf(format, args...))
}

// add checks the next record of the journal.
func (l *ledger) add(rec ticket.Sale) {
	defer func() { l.n++; l.last = rec }()
	if rec.Kind == ticket.KindInit {
		if l.n > 0 {
			l.problem("record #%d: an init record in the middle of the journal", rec.Seq)
		}
		l.left, l.total, l.known, l.initSeen = rec.Left, rec.Total, true, true
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
			if rec.Kind == ticket.KindRestock {
				l.total -= rec.Qty
			}
		}
	} else if rec.Seq != l.last.Seq+1 {
		l.problem("record #%d follows record #%d: sequence numbers must run up by one without gaps or repeats", rec.Seq, l.last.Seq)
	}
	l.left -= rec.Taken()
	switch rec.Kind {
	case ticket.KindSale:
		l.r.Sales++
		l.r.Tickets += rec.Qty
	case ticket.KindOutside:
		l.r.Outside += rec.Qty
	case ticket.KindRestock:
		l.r.Added += rec.Qty
		l.restock += rec.Qty
		l.total += rec.Qty
	}
	if rec.Left != l.left {
		l.problem("record #%d says %d left, but the records before it leave %d, minus its %d, %d", rec.Seq, rec.Left, l.left+rec.Taken(), rec.Taken(), l.left)
		l.left = rec.Left
	}
	if rec.Total != 0 {
		if l.known && rec.Total != l.total {
			l.problem("record #%d says total %d, but the records before it make %d", rec.Seq, rec.Total, l.total)
		}
		l.total, l.known = rec.Total, true
	}
}

// finish checks the journal's end against the state, naming the journal's
// last record and the state's holder as given.
func (l *ledger) finish(lastRecord, holder string) {
	st := l.r.State
	if l.last.Seq != st.Version && (l.n > 0 || st.Version != 0) {
		l.problem("%s is #%d but %s is at version %d", lastRecord, l.last.Seq, holder, st.Version)
	}
	if l.n > 0 && l.last.Left != st.Left {
		l.problem("%s left %d but %s says %d", lastRecord, l.last.Left, holder, st.Left)
	}
	if l.known && l.total != st.Total {
		l.problem("the journal makes the total %d but %s says %d", l.total, holder, st.Total)
	}
	sold := l.r.Tickets + l.r.Outside + l.presold
	if st.Total != st.Left+sold {
		l.problem("total %d is not the %d left plus the %d sold in the journal", st.Total, st.Left, sold)
	}
}
