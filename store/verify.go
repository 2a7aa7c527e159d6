package store

import (
	"context"
	"fmt"

	"github.com/ticketd/ticket/ticket"
)

// Report is what Verify found.
type Report struct {
	State    ticket.State // the ticket file
	Sales    int64        // committed sales in the journal
	Tickets  int64        // tickets those sales took
	Pending  string       // an uncommitted tail a crashed buyer left, to be cut by the next buy; "" if none
	Problems []string     // every discrepancy found; empty when the books balance
}

// Balanced reports whether the books balance.
func (r Report) Balanced() bool { return len(r.Problems) == 0 }

// Verify checks the sale without changing anything: the ticket file is
// valid; the journal's sequence numbers run 1..n without gaps or repeats;
// each sale's "left" follows from the one before; total = left + the
// tickets sold; and the journal's last sale is the ticket file's version.
// It holds the lock while it reads, so that it sees a ticket file and a
// journal that belong together. A journal line that a crashed buyer left
// uncommitted is reported in Pending, not as a problem: the next buy cuts it.
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
	r.State = state
	problem := func(format string, args ...any) {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
	left := state.Total
	var last ticket.Sale
	for sale, err := range readSales(f.journal) {
		if err != nil {
			if sale, ok := pendingTail(err, last, state); ok {
				r.Pending = sale
				break
			}
			problem("%v", err)
			break
		}
		if last.Seq == state.Version && sale.Seq == state.Version+1 && r.Pending == "" {
			// Possibly the uncommitted tail; it must be the journal's last line.
			r.Pending = fmt.Sprintf("sale #%d (%d to %s) was never committed to the ticket file", sale.Seq, sale.Qty, sale.Buyer)
			continue
		}
		if r.Pending != "" {
			problem("sale #%d follows sale #%d, which the ticket file never committed", sale.Seq, last.Seq+1)
			r.Pending = ""
		}
		if sale.Seq != last.Seq+1 {
			problem("sale #%d follows sale #%d: sequence numbers must run 1, 2, 3 without gaps or repeats", sale.Seq, last.Seq)
		}
		left -= sale.Qty
		if sale.Left != left {
			problem("sale #%d says %d left, but %d total minus the sales so far is %d", sale.Seq, sale.Left, state.Total, left)
			left = sale.Left
		}
		r.Sales++
		r.Tickets += sale.Qty
		last = sale
	}
	if last.Seq != state.Version {
		problem("the journal's last committed sale is #%d but the ticket file is at version %d", last.Seq, state.Version)
	}
	if state.Total != state.Left+r.Tickets {
		problem("total %d is not the %d left plus the %d sold in the journal", state.Total, state.Left, r.Tickets)
	}
	if r.Sales > 0 && last.Left != state.Left {
		problem("the journal's last sale left %d but the ticket file says %d", last.Left, state.Left)
	}
	return r, nil
}

// pendingTail tells an unfinished last line (a buyer killed while appending)
// from a damaged journal.
func pendingTail(err error, last ticket.Sale, state ticket.State) (string, bool) {
	je, ok := err.(*journalError)
	if !ok || last.Seq != state.Version || !je.unfinished {
		return "", false
	}
	return "an unfinished last line was never committed", true
}

// balance checks a state against its whole journal, as Verify does for a
// ticket file, for backends whose journal has no uncommitted tail.
func balance(state ticket.State, sales []ticket.Sale) Report {
	r := Report{State: state}
	problem := func(format string, args ...any) {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
	left := state.Total
	var last ticket.Sale
	for _, sale := range sales {
		if sale.Seq != last.Seq+1 {
			problem("sale #%d follows sale #%d: sequence numbers must run 1, 2, 3 without gaps or repeats", sale.Seq, last.Seq)
		}
		left -= sale.Qty
		if sale.Left != left {
			problem("sale #%d says %d left, but %d total minus the sales so far is %d", sale.Seq, sale.Left, state.Total, left)
			left = sale.Left
		}
		r.Sales++
		r.Tickets += sale.Qty
		last = sale
	}
	if last.Seq != state.Version {
		problem("the journal's last sale is #%d but the state is at version %d", last.Seq, state.Version)
	}
	if state.Total != state.Left+r.Tickets {
		problem("total %d is not the %d left plus the %d sold in the journal", state.Total, state.Left, r.Tickets)
	}
	if r.Sales > 0 && last.Left != state.Left {
		problem("the journal's last sale left %d but the state says %d", last.Left, state.Left)
	}
	return r
}
