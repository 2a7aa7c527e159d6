package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/ticketd/ticket/ticket"
)

// Report is what Verify found.
type Report struct {
	State    ticket.State // the ticket file, with the sales the journal committed beyond it applied
	Sales    int64        // committed sales in the journal
	Tickets  int64        // tickets those sales took
	Pending  string       // what a crashed buyer left for the next buy to complete or cut; "" if none
	Problems []string     // every discrepancy found; empty when the books balance
}

// Balanced reports whether the books balance.
func (r Report) Balanced() bool { return len(r.Problems) == 0 }

// Verify checks the sale without changing anything: the ticket file is
// valid; the journal's sequence numbers run 1..n without gaps or repeats;
// each sale's "left" follows from the one before; total = left + the
// tickets sold; and the journal's last sale is the ticket file's version.
// It holds the lock while it reads, so that it sees a ticket file and a
// journal that belong together. What a crashed buyer left is reported in
// Pending, not as a problem: sales committed to the journal but not yet to
// the ticket file (they are counted, and the next buy writes them), or an
// unfinished last line (never committed; the next buy cuts it).
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
	state, _, err := readState(f.ticket) // again: it may have changed while we waited
	if err != nil {
		return r, err
	}
	stored := state
	r.State = state
	l := newLedger(&r)
	problem := l.problem
	var beyond []int64 // sales after the ticket file's version
	var pending []string
	for sale, err := range readSales(f.journal) {
		if err != nil {
			if je, ok := err.(*journalError); ok && je.unfinished {
				pending = append(pending, "an unfinished last line was never committed (the next buy cuts it)")
				break
			}
			problem("%v", err)
			break
		}
		l.add(sale)
		if sale.Seq > stored.Version {
			next, err := state.Take(sale.Qty)
			if err != nil {
				problem("sale #%d (%d tickets) beyond the ticket file's version %d: %v", sale.Seq, sale.Qty, stored.Version, err)
				continue
			}
			state = next
			beyond = append(beyond, sale.Seq)
		}
	}
	if len(beyond) > 0 {
		which := fmt.Sprintf("sale #%d is", beyond[0])
		if len(beyond) > 1 {
			which = fmt.Sprintf("sales #%d to #%d are", beyond[0], beyond[len(beyond)-1])
		}
		pending = append([]string{which + " committed to the journal but not yet to the ticket file (the next buy writes it)"}, pending...)
		r.State = state
	}
	r.Pending = strings.Join(pending, "; ")
	l.finish("the journal's last committed sale", "the ticket file")
	return r, nil
}

// ledger makes Verify's checks over a journal, one sale at a time, into
// a Report: sequence numbers 1..n, each sale's "left" following from the
// one before, the total, and the last sale matching the state.
type ledger struct {
	r    *Report
	left int64
	last ticket.Sale
}

func newLedger(r *Report) *ledger { return &ledger{r: r, left: r.State.Total} }

func (l *ledger) problem(format string, args ...any) {
	l.r.Problems = append(l.r.Problems, fmt.Sprintf(format, args...))
}

// add checks the next sale of the journal.
func (l *ledger) add(sale ticket.Sale) {
	if sale.Seq != l.last.Seq+1 {
		l.problem("sale #%d follows sale #%d: sequence numbers must run 1, 2, 3 without gaps or repeats", sale.Seq, l.last.Seq)
	}
	l.left -= sale.Qty
	if sale.Left != l.left {
		l.problem("sale #%d says %d left, but %d total minus the sales so far is %d", sale.Seq, sale.Left, l.r.State.Total, l.left)
		l.left = sale.Left
	}
	l.r.Sales++
	l.r.Tickets += sale.Qty
	l.last = sale
}

// finish checks the journal's end against the state, naming the journal's
// last sale and the state's holder as given.
func (l *ledger) finish(lastSale, holder string) {
	st := l.r.State
	if l.last.Seq != st.Version {
		l.problem("%s is #%d but %s is at version %d", lastSale, l.last.Seq, holder, st.Version)
	}
	if st.Total != st.Left+l.r.Tickets {
		l.problem("total %d is not the %d left plus the %d sold in the journal", st.Total, st.Left, l.r.Tickets)
	}
	if l.r.Sales > 0 && l.last.Left != st.Left {
		l.problem("the journal's last sale left %d but %s says %d", l.last.Left, holder, st.Left)
	}
}
