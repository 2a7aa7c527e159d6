package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"time"

	"github.com/ticketd/ticket/store/group"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/ticket"
)

// Booking on files: holds, confirms, releases, returns and restocks are
// transactions like a buy (see update), without group commit. Each reads
// the ticket file, which holds the open holds and, with a limit, each
// buyer's holding (see package ticket), so that a hold or a buy decides
// without reading the journal. Only what is rare reads back into the
// journal, as far as the record it names: a confirm or release of a hold
// that is no longer open (to report its first outcome), and a return (to
// find its sale and what was returned of it).

// ErrDuration reports a hold for a duration that is not positive, or that
// would end past what a hold's expiry can be (see CheckHold).
var ErrDuration = errors.New("a hold must last longer than 0, and end before the year 2262")

// latestExpiry is the latest a hold may end: expiries are kept as int64
// nanoseconds since 1970 (in the index of open holds), which end in April
// 2262; a day short of it, for the clocks of other machines.
var latestExpiry = time.Unix(0, math.MaxInt64).Add(-24 * time.Hour)

// CheckHold reports whether a hold for d made at now may be: ErrDuration
// for a d that is not positive, or one that ends past latestExpiry. Both
// backends check it.
func CheckHold(d time.Duration, now time.Time) error {
	if d <= 0 || now.Add(d).After(latestExpiry) {
		return fmt.Errorf("hold for %v: %w", d, ErrDuration)
	}
	return nil
}

// HoldReceipt is the outcome of a hold.
type HoldReceipt struct {
	Hold  ticket.Record // the hold record: its id in Hold, its expiry in Expires; zero when nothing was held
	State ticket.State  // the state after the hold, or the one that refused it
}

// InitLimit is Init with a per-buyer limit of limit tickets (0: none),
// which the journal's init record keeps.
func (s *Store) InitLimit(ctx context.Context, n, limit int64, mode Mode) (ticket.State, string, error) {
	state, err := ticket.New(n)
	if err != nil {
		return state, "", err
	}
	if state, err = state.WithLimit(limit, 0); err != nil {
		return state, "", err
	}
	archive, err := s.Restore(ctx, state, nil, mode)
	return state, archive, err
}

// commitRecord is a transaction that records one record of the state it
// finds, made by decide (or none, with an error); its receipt is the
// completed record and the state after it, or the state that refused it.
func (s *Store) commitRecord(ctx context.Context, decide func(state ticket.State, j *journal) (ticket.Record, error)) (ticket.Record, ticket.State, error) {
	var (
		rec   ticket.Record
		after ticket.State
	)
	err := s.update(ctx, func(state ticket.State, j *journal) (ticket.State, []ticket.Record, error) {
		after = state
		r, err := decide(state, j)
		if err != nil {
			return state, nil, s.named(err)
		}
		if r.Seq != 0 { // an outcome already recorded (see Confirm)
			rec = r
			return state, nil, nil
		}
		next, r, err := state.Next(r)
		if err != nil {
			return state, nil, s.named(err)
		}
		rec, after = r, next
		return next, []ticket.Record{r}, nil
	})
	if err != nil && !errors.Is(err, ErrUnconfirmed) && rec.Seq != 0 && rec.Seq > after.Version() {
		rec = ticket.Record{}
	}
	return rec, after, err
}

// named wraps a refusal with the ticket file's path, so that its one-line
// message names the sale: an invalid state, or a request the sale refuses.
// Errors that name a file already (the journal's) are left as they are.
func (s *Store) named(err error) error {
	var je *journalError
	switch {
	case err == nil, errors.As(err, &je):
		return err
	case errors.Is(err, ticket.ErrInvalid), errors.Is(err, ticket.ErrLimit), errors.Is(err, ErrNoLimit), errors.Is(err, ticket.ErrHoldLapsed),
		errors.Is(err, ticket.ErrUnknownHold), errors.Is(err, ticket.ErrUnknownSale), errors.Is(err, ticket.ErrReturn),
		errors.Is(err, ticket.ErrSoldOut), errors.Is(err, ErrConfirmed):
		return fmt.Errorf("%s: %w", s.path, err)
	}
	return err
}

// allowed is the limit rule, which the negative control of the limit's
// test switches off (seam.NoLimitCheck).
func allowed(state ticket.State, buyer string, have, qty int64) error {
	if seam.NoLimitCheck {
		return nil
	}
	return state.Allowed(buyer, have, qty)
}

// Hold takes qty tickets out of the stock into held for buyer, for d, all
// or nothing. It returns ticket.ErrSoldOut when fewer are left,
// ticket.ErrLimit when the sale's per-buyer limit would be passed, and the
// errors of Buy otherwise. The receipt's Hold names the hold (its id in
// Hold). Whoever next holds the lock after d releases it as lapsed.
func (s *Store) Hold(ctx context.Context, buyer string, qty int64, d time.Duration) (HoldReceipt, error) {
	if err := ticket.CheckRequest(buyer, qty); err != nil {
		return HoldReceipt{}, err
	}
	if err := CheckHold(d, time.Now()); err != nil {
		return HoldReceipt{}, err
	}
	if rec, st, err := s.groupRequest(ctx, group.Request{Kind: ticket.KindHold, Buyer: buyer, Qty: qty, For: d}); !errors.Is(err, errAlone) {
		return HoldReceipt{Hold: rec, State: st}, s.named(err)
	}
	rec, st, err := s.commitRecord(ctx, func(state ticket.State, j *journal) (ticket.Record, error) {
		if err := j.limitFor(state, buyer, qty); err != nil {
			return ticket.Record{}, err
		}
		seam.Crash("hold.decided")
		now := time.Now().UTC()
		return ticket.Record{Kind: ticket.KindHold, Buyer: buyer, Qty: qty, Expires: now.Add(d), PID: os.Getpid(), Time: now}, nil
	})
	return HoldReceipt{Hold: rec, State: st}, err
}

// Confirm turns the open hold id into a sale. A hold that expired or was
// released is ticket.ErrHoldLapsed (its tickets are back in the stock); a
// hold that was confirmed already returns that first confirm, and sells
// nothing more; an id that names no hold of this sale is
// ticket.ErrUnknownHold.
func (s *Store) Confirm(ctx context.Context, id string) (Receipt, error) {
	if rec, st, err := s.groupRequest(ctx, group.Request{Kind: ticket.KindConfirm, Hold: id}); !errors.Is(err, errAlone) {
		return Receipt{Sale: rec, State: st}, s.named(err)
	}
	rec, st, err := s.closeHold(ctx, id, ticket.KindConfirm)
	return Receipt{Sale: rec, State: st}, err
}

// Release gives the open hold id's tickets back to the stock. A hold no
// longer open is ticket.ErrHoldLapsed (released or lapsed already) or
// ErrConfirmed; an unknown id ticket.ErrUnknownHold.
func (s *Store) Release(ctx context.Context, id string) (ticket.Record, error) {
	if rec, _, err := s.groupRequest(ctx, group.Request{Kind: ticket.KindRelease, Hold: id}); !errors.Is(err, errAlone) {
		return rec, s.named(err)
	}
	rec, _, err := s.closeHold(ctx, id, ticket.KindRelease)
	return rec, err
}

// ErrConfirmed reports a release of a hold that was confirmed: a sale,
// which a return gives back.
var ErrConfirmed = errors.New("hold was confirmed")

// closeHold confirms or releases hold id (kind).
func (s *Store) closeHold(ctx context.Context, id string, kind ticket.Kind) (ticket.Record, ticket.State, error) {
	seq, err := ticket.HoldSeq(id)
	if err != nil {
		return ticket.Record{}, ticket.State{}, s.named(err)
	}
	return s.commitRecord(ctx, func(state ticket.State, j *journal) (ticket.Record, error) {
		h, open, err := j.FindHold(id)
		if err != nil {
			return ticket.Record{}, err
		}
		if open {
			seam.Crash(string(kind) + ".decided")
			r := ticket.Record{Kind: kind, Hold: id, Buyer: h.Buyer, Qty: h.Qty, Time: time.Now().UTC()}
			if kind == ticket.KindConfirm {
				r.PID = os.Getpid()
			} else {
				r.Reason = ticket.ReasonReleased
			}
			return r, nil
		}
		end, err := j.holdEnd(state, id, seq)
		if err != nil {
			return ticket.Record{}, err
		}
		switch {
		case end.Kind == ticket.KindConfirm && kind == ticket.KindConfirm:
			return end, nil // the first outcome, once more
		case end.Kind == ticket.KindConfirm:
			return ticket.Record{}, fmt.Errorf("hold %s was confirmed as sale #%d: %w", id, end.Seq, ErrConfirmed)
		}
		return ticket.Record{}, fmt.Errorf("hold %s %s (#%d): its %d %s back in stock: %w", id, end.Reason, end.Seq, end.Qty, plural(end.Qty, "ticket is", "tickets are"), ticket.ErrHoldLapsed)
	})
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// holdEnd returns the record that closed hold id, opened by record seq:
// one this transaction records (a lapse), or one of the journal, read back
// as far as seq.
func (j *journal) holdEnd(state ticket.State, id string, seq int64) (ticket.Record, error) {
	for _, r := range j.lapsed {
		if r.Hold == id {
			return r, nil
		}
	}
	if seq > state.Version() {
		return ticket.Record{}, fmt.Errorf("no hold %s in this sale: %w", id, ticket.ErrUnknownHold)
	}
	size, err := j.size()
	if err != nil {
		return ticket.Record{}, err
	}
	entries, _, _, err := tailRecords(j.f, j.path, size, func(r ticket.Record) bool { return r.Seq <= seq })
	if err != nil {
		return ticket.Record{}, err
	}
	opened := false
	for _, e := range entries {
		switch {
		case e.Kind == ticket.KindHold && e.Hold == id:
			opened = true
		case opened && e.Hold == id && (e.Kind == ticket.KindConfirm || e.Kind == ticket.KindRelease):
			return e.Record, nil
		}
	}
	return ticket.Record{}, fmt.Errorf("no hold %s in this sale: %w", id, ticket.ErrUnknownHold)
}

// Return gives back qty tickets (0: all it still has) of sale number sale,
// a sale or a confirmed hold. It refuses a number that is no sale
// (ticket.ErrUnknownSale) and more than the sale still has
// (ticket.ErrReturn).
func (s *Store) Return(ctx context.Context, sale, qty int64) (ticket.Record, error) {
	if qty < 0 {
		return ticket.Record{}, ticket.ErrQuantity
	}
	if sale < 1 {
		return ticket.Record{}, s.named(fmt.Errorf("sale #%d: %w", sale, ticket.ErrUnknownSale))
	}
	rec, _, err := s.commitRecord(ctx, func(state ticket.State, j *journal) (ticket.Record, error) {
		buyer, has, err := j.saleLeft(state, sale)
		if err != nil {
			return ticket.Record{}, err
		}
		n := qty
		if n == 0 {
			n = has
		}
		if n > has || n == 0 {
			return ticket.Record{}, fmt.Errorf("sale #%d has %d %s to return, not %d: %w", sale, has, plural(has, "ticket", "tickets"), n, ticket.ErrReturn)
		}
		seam.Crash("return.decided")
		return ticket.Record{Kind: ticket.KindReturn, Sale: sale, Buyer: buyer, Qty: n, PID: os.Getpid(), Time: time.Now().UTC()}, nil
	})
	return rec, err
}

// saleLeft returns who made sale number sale and how many of its tickets
// were not returned yet, reading the journal back as far as the sale.
func (j *journal) saleLeft(state ticket.State, sale int64) (string, int64, error) {
	unknown := fmt.Errorf("no sale #%d in this sale's journal (a sale, or a confirmed hold): %w", sale, ticket.ErrUnknownSale)
	if sale > state.Version() {
		return "", 0, unknown
	}
	size, err := j.size()
	if err != nil {
		return "", 0, err
	}
	entries, found, _, err := tailRecords(j.f, j.path, size, func(r ticket.Record) bool { return r.Seq <= sale })
	if err != nil {
		return "", 0, err
	}
	if !found || entries[0].Seq != sale || (entries[0].Kind != ticket.KindSale && entries[0].Kind != ticket.KindConfirm) {
		return "", 0, unknown
	}
	has := entries[0].Qty
	for _, e := range entries[1:] {
		if e.Kind == ticket.KindReturn && e.Sale == sale {
			has -= e.Qty
		}
	}
	return entries[0].Buyer, max(has, 0), nil
}

// Restock changes the stock by delta tickets: more than 0 adds them (the
// total grows), less than 0 takes them out of what is left (the total
// falls), never below none left (ticket.ErrSoldOut).
func (s *Store) Restock(ctx context.Context, delta int64) (ticket.Record, ticket.State, error) {
	if delta == 0 || delta == math.MinInt64 {
		return ticket.Record{}, ticket.State{}, ticket.ErrQuantity
	}
	req := group.Request{Kind: ticket.KindAdd, Qty: delta}
	if delta < 0 {
		req.Kind, req.Qty = ticket.KindRemove, -delta
	}
	if rec, st, err := s.groupRequest(ctx, req); !errors.Is(err, errAlone) {
		return rec, st, s.named(err)
	}
	return s.commitRecord(ctx, func(ticket.State, *journal) (ticket.Record, error) {
		r := ticket.Record{Kind: ticket.KindAdd, Qty: delta, PID: os.Getpid(), Time: time.Now().UTC()}
		if delta < 0 {
			r.Kind, r.Qty = ticket.KindRemove, -delta
		}
		return r, nil
	})
}

// ErrNoLimit reports a change of the limit of a sale that was started
// without one.
var ErrNoLimit = errors.New("the sale has no per-buyer limit")

// SetLimit changes the per-buyer limit of a sale started with one to k (1
// or more). It refuses, with ticket.ErrLimit, a limit below what a buyer
// already has, and ErrNoLimit for a sale started without a limit.
func (s *Store) SetLimit(ctx context.Context, k int64) (ticket.Record, ticket.State, error) {
	if k < 1 {
		return ticket.Record{}, ticket.State{}, ticket.ErrQuantity
	}
	return s.commitRecord(ctx, func(state ticket.State, j *journal) (ticket.Record, error) {
		if state.Limit() == 0 {
			return ticket.Record{}, fmt.Errorf("%w (it is set when the sale starts)", ErrNoLimit)
		}
		most, err := j.holdings.Most()
		if err != nil {
			return ticket.Record{}, err
		}
		if _, err := state.WithLimit(k, most); err != nil {
			return ticket.Record{}, j.overLimit(k, err)
		}
		return ticket.Record{Kind: ticket.KindLimit, Limit: k, PID: os.Getpid(), Time: time.Now().UTC()}, nil
	})
}

// overLimit names a buyer who has more than a new limit of k, which err
// refused, reading the whole journal: a refusal of the seller's, rare.
func (j *journal) overLimit(k int64, err error) error {
	var l ticket.Ledger
	for r, rerr := range (indexSource{j, math.MaxInt64}).All() {
		if rerr != nil {
			return err
		}
		l.Add(r)
	}
	for _, r := range j.lapsed {
		l.Add(r)
	}
	for _, name := range slices.Sorted(maps.Keys(l.Holders())) {
		if n := l.Holders()[name]; n > k {
			return fmt.Errorf("buyer %q already has %d tickets, more than a limit of %d: %w", name, n, k, ticket.ErrLimit)
		}
	}
	return err
}
