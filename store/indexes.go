package store

import (
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"

	"github.com/ticketd/ticket/store/holders"
	"github.com/ticketd/ticket/store/holds"
	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/ticket"
)

// A sale's open holds live in PATH.holds (package store/holds) and, under a
// per-buyer limit, each buyer's holding in PATH.holders (package
// store/holders): indexes beside the journal, rebuilt from it whenever in
// doubt, so that a buy, hold or confirm costs the same after a million
// sales as after one. This file opens them for a transaction.

// indexSource is the journal as the indexes read it: its committed
// records up to version, the ticket file's (what lies beyond is a crashed
// writer's, cut by this transaction).
type indexSource struct {
	j       *journal
	version int64
}

// From returns the journal's records from number seq to version, read back
// from the end.
func (jr indexSource) From(seq int64) ([]ticket.Record, error) {
	size, err := jr.j.size()
	if err != nil {
		return nil, err
	}
	entries, _, _, err := tailRecords(jr.j.f, jr.j.path, size, func(r ticket.Record) bool { return r.Seq <= seq })
	if err != nil {
		return nil, err
	}
	var out []ticket.Record
	for _, e := range entries {
		if e.Seq >= seq && e.Seq <= jr.version {
			out = append(out, e.Record)
		}
	}
	return out, nil
}

// All yields the journal's records up to version.
func (jr indexSource) All() iter.Seq2[ticket.Record, error] {
	return func(yield func(ticket.Record, error) bool) {
		for r, err := range readRecords(jr.j.path) {
			var je *journalError
			switch {
			case err != nil && errors.As(err, &je) && je.unfinished:
				return // a crashed writer's last line: cut by this transaction
			case err != nil:
				yield(r, err)
				return
			case r.Seq > jr.version:
				return
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}

// openHoldings brings the index of a sale with a limit up to the journal's
// committed records, under the lock, and stages the records the
// settlement writes before any new one (lapses), so that the buyers it
// gives tickets back to may take them again in the same transaction.
func (s *Store) openHoldings(p paths, like files.Like, j *journal, st settlement) (*holders.Index, error) {
	x, err := holders.Sync(p.holders, like, st.committed, st.last, indexSource{j, st.committed}, s.opts.NoSync)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.ticket, err)
	}
	for _, r := range st.add {
		x.Stage(r)
	}
	for _, r := range st.lapsed {
		x.Stage(r)
	}
	return x, nil
}

// Holding returns what buyer has under the sale's limit (bought and not
// returned, plus held), with what this transaction has staged; 0 in a sale
// without a limit.
func (j *journal) Holding(buyer string) (int64, error) {
	if j.holdings == nil {
		return 0, nil
	}
	return j.holdings.Holding(buyer)
}

// Stage counts r, decided in this transaction and not yet committed, in
// what Holding returns for its buyer and in the open holds that FindHold
// sees (group commit's batches).
func (j *journal) Stage(r ticket.Record) error {
	if j.holdings != nil {
		j.holdings.Stage(r)
	}
	switch r.Kind {
	case ticket.KindHold, ticket.KindConfirm, ticket.KindRelease:
		x, err := j.holdIndex()
		if err != nil {
			return err
		}
		return x.Stage(r)
	}
	return nil
}

// FindHold returns the open hold id, as this transaction leaves it.
func (j *journal) FindHold(id string) (ticket.Hold, bool, error) {
	x, err := j.holdIndex()
	if err != nil {
		return ticket.Hold{}, false, err
	}
	return x.Find(id)
}

// holdIndex returns the index of the sale's open holds, opened (under the
// lock) the first time a transaction needs it.
func (j *journal) holdIndex() (*holds.Index, error) {
	if j.holds == nil {
		if err := j.openHold(); err != nil {
			return nil, err
		}
	}
	return j.holds, nil
}

// openHolds brings the index of open holds up to the journal's committed
// records, under the lock. A sale with nothing held has no open hold: an
// index that is behind then starts again empty, without reading the
// journal, however many records it missed.
func (s *Store) openHolds(p paths, like files.Like, j *journal, st settlement, held int64) error {
	x, err := holds.Sync(p.holds, like, st.committed, st.last, indexSource{j, st.committed}, held, s.opts.NoSync)
	if err != nil {
		return fmt.Errorf("%s: %w", p.ticket, err)
	}
	j.holds = x
	return nil
}

// limitFor is the limit rule for buyer's qty more in state: nil without a
// limit, an error wrapping ticket.ErrLimit past it. The negative control
// of the limit's test switches it off (seam.NoLimitCheck, see allowed).
func (j *journal) limitFor(state ticket.State, buyer string, qty int64) error {
	if !state.LimitApplies(qty) {
		return nil // no holding to look up
	}
	have, err := j.Holding(buyer)
	if err != nil {
		return err
	}
	return allowed(state, buyer, have, qty)
}

// removeIndexes removes the indexes of a sale replaced or repaired: its
// next writer builds them again from the journal.
func removeIndexes(p paths) error {
	for _, name := range []string{p.holders, p.holders + ".tmp", p.holds, p.holds + ".tmp"} {
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return files.Error("remove", name, err)
		}
	}
	return nil
}
