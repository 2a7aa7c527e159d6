package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ticketd/ticket/ticket"
)

// Repaired is what Repair did.
type Repaired struct {
	State ticket.State // the ticket file as it now is
	Sales int64        // the sales it was rebuilt from; 0 if nothing was rebuilt
	Kept  string       // where the damaged ticket file was moved; "" if it was not
}

// Repair rebuilds a damaged ticket file from the sales journal, the only
// record a buy makes durable: a power cut on a file system whose renames
// are not atomic across a crash (ext4 without its journal) may leave the
// ticket file empty or garbled while the journal holds every sale. Under
// the lock, if the ticket file cannot be parsed, Repair checks the whole
// journal (numbers 1..n, each sale's "left" following from the one
// before), moves the damaged file aside to PATH.damaged.TIME (never
// deleting it) and writes, durably, a ticket file with the journal's last
// state: left as the last sale says, total = left + the tickets sold.
// Members the damaged file had besides count, total, sold and version
// cannot be recovered, nor tickets a seed file counted as sold before its
// first sale (Verify does not balance such a sale either).
//
// A ticket file that parses is left alone (Repaired.Sales is 0). A journal
// that is missing, empty or does not balance is refused with an error
// wrapping ErrJournal, and nothing is changed.
func (s *Store) Repair(ctx context.Context) (Repaired, error) {
	f := s.files()
	info, err := os.Stat(f.ticket)
	if err != nil {
		return Repaired{}, openError(s.path, err)
	}
	if !info.Mode().IsRegular() {
		return Repaired{}, invalidFile(s.path, "not a regular file: move it away, then run ticket repair again")
	}
	unlock, err := Lock(ctx, f.lock, info.Mode().Perm())
	if err != nil {
		return Repaired{}, err
	}
	defer unlock()
	if st, _, err := readState(f.ticket); err == nil {
		return Repaired{State: st}, nil
	} else if !errors.Is(err, ticket.ErrInvalid) {
		return Repaired{}, err // missing, unreadable: not damage Repair can mend
	}
	var (
		r     Report
		l     = newLedger(&r)
		total int64
		last  ticket.Sale
	)
	for sale, err := range readSales(f.journal) {
		if err != nil {
			var je *journalError
			if errors.As(err, &je) && je.unfinished {
				break // never committed
			}
			return Repaired{}, err
		}
		if r.Sales == 0 {
			// The first sale fixes the total: what it left plus what it took.
			total = sale.Left + sale.Qty
			r.State.Total = total
			l = newLedger(&r)
		}
		l.add(sale)
		last = sale
	}
	if len(r.Problems) > 0 {
		return Repaired{}, &journalError{path: f.journal, problem: "cannot rebuild the ticket file from it: " + r.Problems[0]}
	}
	if r.Sales == 0 {
		return Repaired{}, &journalError{path: f.journal, problem: "holds no sales to rebuild the ticket file from: if the sale had none, start it again with ticket init --count N --force after moving the damaged file away"}
	}
	state, err := ticket.New(total)
	if err != nil {
		return Repaired{}, fmt.Errorf("%s: %w", f.journal, err)
	}
	if state, err = state.Take(total - last.Left); err != nil {
		return Repaired{}, fmt.Errorf("%s: %w", f.journal, err)
	}
	state.Version = last.Seq
	kept := fmt.Sprintf("%s.damaged.%s", f.ticket, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Link(f.ticket, kept); err != nil {
		return Repaired{}, ioError("keep the damaged file as", kept, err)
	}
	uid, gid := owner(info)
	if err := (writer{noSync: s.opts.NoSync}).replace(f.ticket, f.tmp, state.Encode(), info.Mode().Perm(), uid, gid); err != nil {
		return Repaired{}, err
	}
	return Repaired{State: state, Sales: r.Sales, Kept: kept}, nil
}
