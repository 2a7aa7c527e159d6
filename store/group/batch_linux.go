//go:build linux

package group

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/ticket"
)

// A Batch is one leader's commit of the region's pending requests, made in
// the file store's transaction (see Sale.Commit): Decide makes its
// records, Done publishes their outcomes.
type Batch struct {
	r       *Region
	slots   []slot  // taken by this leader, intents written
	settled bool    // take ran: a crashed leader's batch is settled
	stale   bool    // the journal is not the region's: send everyone back
	durable bool    // a request in the batch needs its sale fsynced
	outcome Outcome // as Done was told
}

// begin starts a batch, once the requests of a batch as large as the last
// one have had a moment to arrive; nil if there is nothing to commit (a
// successor whose own request another leader served only passes the lock
// on).
func (r *Region) begin() *Batch {
	if !r.busy() {
		return nil
	}
	r.gather()
	return &Batch{r: r}
}

// Decide takes the batch's requests and applies them in turn to state,
// the sale as the transaction found it, writing each one's intended
// outcome into its slot. It returns the state after them and the records
// of their sales, to be appended to the journal j. It refuses, sending
// every request back to be bought alone, when j is not the journal the
// region serves (the sale was replaced since they were posted).
func (b *Batch) Decide(state ticket.State, j Journal) (ticket.State, []ticket.Record, error) {
	r := b.r
	if !r.serves(j.File()) {
		b.stale = true
		return state, nil, errStale
	}
	var err error
	if b.slots, err = r.take(j, state); err != nil {
		return state, nil, err
	}
	b.settled = true
	seam.Crash(seam.GroupTake)
	var next ticket.State
	var records []ticket.Record
	b.slots, next, records = r.decide(b.slots, state, j)
	r.u32(offLastBatch).Store(uint32(len(b.slots)))
	if len(records) == 0 {
		return next, nil, nil
	}
	r.i64(offBatchFrom).Store(state.Version() + 1)
	r.i64(offBatchTo).Store(next.Version())
	r.u32(offBatchOpen).Store(1)
	for _, sl := range b.slots {
		b.durable = b.durable || sl.durable()
	}
	return next, records, nil
}

// Durable reports whether a request of the batch needs its sale fsynced:
// a leader that skips fsync makes an exception for it.
func (b *Batch) Durable() bool { return b.durable }

// Done publishes the outcomes of the batch, or sends its requests back,
// as the transaction ended. The file store calls it while the journal is
// still locked: a process that locked another lock file (someone deleted
// PATH.lock) and waits for the journal must not find this batch half done
// and take it for a crashed leader's.
func (b *Batch) Done(o Outcome) {
	b.outcome = o
	r := b.r
	if b.stale {
		// The journal was replaced (init --force, copy --force) since
		// these requests were posted: each buys alone, from the new one.
		for i := range groupSlots {
			sl := r.slot(i)
			if !sl.state().CompareAndSwap(slotPending, slotRetry) {
				sl.state().CompareAndSwap(slotTaken, slotRetry)
			}
		}
		r.u32(offBatchOpen).Store(0)
		return
	}
	switch o {
	case Committed:
		seam.Crash(seam.GroupPublish)
		for _, sl := range b.slots {
			sl.state().CompareAndSwap(slotTaken, sl.outcome())
		}
		r.u32(offBatchOpen).Store(0)
	case Unconfirmed:
		// The sales may stand: leave them taken, with the batch open,
		// for the next leader to find in the journal or decide again.
	default:
		for _, sl := range b.slots {
			sl.state().CompareAndSwap(slotTaken, slotRetry)
		}
		if b.settled {
			// This batch's lines were taken back. A crashed leader's
			// batch that take did not reach stays open for the next
			// leader.
			r.u32(offBatchOpen).Store(0)
		}
	}
}

// take collects the requests to commit: every pending slot, and every slot
// a crashed leader left taken whose sale is not in the journal. A crashed
// leader's slots whose sales are in the journal are published as sold on
// the spot (they are committed; Read shows them even before the ticket file
// is replaced), and slots whose owner died are freed.
func (r *Region) take(j Journal, state ticket.State) (batch []slot, err error) {
	var committed map[int64]ticket.Record // the open batch's sales, by number
	if r.u32(offBatchOpen).Load() != 0 {
		from, to := r.i64(offBatchFrom).Load(), r.i64(offBatchTo).Load()
		if committed, err = j.Sales(from, to); err != nil {
			return nil, err
		}
	}
	for i := range groupSlots {
		s := r.slot(i)
		owner := s.owner().Load()
		if owner == 0 {
			continue
		}
		if !alive(owner) {
			reclaim(s, owner)
			continue
		}
		switch s.state().Load() {
		case slotAbandoned:
			reclaim(s, owner)
		case slotPending:
			if s.state().CompareAndSwap(slotPending, slotTaken) {
				batch = append(batch, s)
			}
		case slotTaken: // a crashed leader's
			seq := s.i64(offSeq).Load()
			// A release's line carries no pid: its hold names it.
			if rec, ok := committed[seq]; ok && seq != 0 && (rec.PID == int(owner) || rec.Kind == ticket.KindRelease) && s.made(rec) {
				s.i64(offLeft).Store(rec.Left)
				s.i64(offTotal).Store(state.Total())
				s.i64(offSold).Store(state.Total() - rec.Left - rec.Held)
				s.i64(offTime).Store(rec.Time.UnixNano())
				if rec.Kind == ticket.KindHold {
					s.i64(offExpires).Store(rec.Expires.UnixNano())
				}
				s.state().Store(slotSold)
				continue
			}
			batch = append(batch, s)
		}
	}
	r.u32(offBatchOpen).Store(0)
	return batch, nil
}

// decide applies the batch's requests (buys, holds, confirms, releases,
// stock added or removed) to state in
// turn, writes each one's intended outcome into its slot, and returns the
// slots it decided, the new state and the records it makes. Only ticket.ErrSoldOut is a
// sold-out outcome: a request the state refuses for another reason (its
// version cannot grow, or its buyer would pass the sale's per-buyer
// limit) is sent back to buy alone, where the buyer gets that error
// itself with all it says, and the slots after it are decided on as
// before; so is a confirm of a hold no longer open, to learn what became of
// it. Each record decided is staged in j, so that a buyer with two
// requests in one batch is held to the limit by both.
func (r *Region) decide(batch []slot, state ticket.State, j Journal) ([]slot, ticket.State, []ticket.Record) {
	var records []ticket.Record
	decided := batch[:0:0]
	now := time.Now().UTC()
	for _, s := range batch {
		next, rec, err := r.decideOne(s, state, j, now)
		if err == nil {
			err = j.Stage(rec)
		}
		switch {
		case errors.Is(err, ticket.ErrSoldOut):
			s.i64(offSeq).Store(0) // sold out
			s.i64(offLeft).Store(state.Left())
			s.i64(offTotal).Store(state.Total())
			s.i64(offSold).Store(state.Sold())
			decided = append(decided, s)
			continue
		case err != nil:
			s.i64(offSeq).Store(0)
			s.state().CompareAndSwap(slotTaken, slotRetry)
			continue
		}
		records = append(records, rec)
		switch rec.Kind {
		case ticket.KindHold:
			tag, _ := strconv.ParseUint(rec.Hold[strings.IndexByte(rec.Hold, '-')+1:], 16, 32)
			s.r.u32(s.base + offTag).Store(uint32(tag))
			s.i64(offExpires).Store(rec.Expires.UnixNano())
		case ticket.KindConfirm, ticket.KindRelease:
			s.setBuyer(rec.Buyer)
			s.i64(offQty).Store(rec.Qty)
		}
		s.i64(offSeq).Store(next.Version())
		s.i64(offLeft).Store(next.Left())
		s.i64(offTotal).Store(next.Total())
		s.i64(offSold).Store(next.Sold())
		s.i64(offTime).Store(now.UnixNano())
		decided = append(decided, s)
		state = next
	}
	return decided, state, records
}

// decideOne decides the request in s on state: the state after it and its
// record, or the error that refuses it.
func (r *Region) decideOne(s slot, state ticket.State, j Journal, now time.Time) (ticket.State, ticket.Record, error) {
	req := ticket.Record{Kind: s.kind(), PID: int(s.owner().Load()), Time: now}
	switch req.Kind {
	case ticket.KindSale, ticket.KindHold:
		req.Buyer, req.Qty = s.buyer(), s.i64(offQty).Load()
		if err := r.allowed(state, j, req.Buyer, req.Qty); err != nil {
			return state, req, err
		}
		if req.Kind == ticket.KindHold {
			req.Expires = now.Add(time.Duration(s.i64(offArg).Load()))
			seam.Crash("hold.decided")
		}
	case ticket.KindAdd, ticket.KindRemove:
		req.Qty = s.i64(offQty).Load()
	case ticket.KindConfirm, ticket.KindRelease:
		req.Hold = s.holdID(s.i64(offArg).Load())
		if req.Kind == ticket.KindRelease {
			req.Reason = ticket.ReasonReleased
		}
		h, open, err := j.FindHold(req.Hold)
		if err != nil {
			return state, req, err
		}
		if !open {
			return state, req, errNotOpen // made alone, it learns what became of the hold
		}
		req.Buyer, req.Qty = h.Buyer, h.Qty
		seam.Crash(string(req.Kind) + ".decided")
	}
	return state.Next(req)
}

// errNotOpen sends a confirm of a hold no longer open back to be made
// alone.
var errNotOpen = errors.New("hold not open")

// allowed is the per-buyer limit rule for a request in a batch (nil in a
// sale without a limit); the negative control of the limit's test
// switches it off (seam.NoLimitCheck).
func (r *Region) allowed(state ticket.State, j Journal, buyer string, qty int64) error {
	if !state.LimitApplies(qty) || seam.NoLimitCheck {
		return nil
	}
	have, err := j.Holding(buyer)
	if err != nil {
		return err
	}
	return state.Allowed(buyer, have, qty)
}

// made reports whether rec, a record of a crashed leader's batch, is the
// one it made of the slot's request: of its kind, and its buyer and qty,
// or its hold (a hold's id is the slot's once published).
func (s slot) made(rec ticket.Record) bool {
	if rec.Kind != s.kind() {
		return false
	}
	switch rec.Kind {
	case ticket.KindConfirm, ticket.KindRelease:
		return rec.Hold == s.holdID(s.i64(offArg).Load())
	case ticket.KindAdd, ticket.KindRemove:
		return rec.Qty == s.i64(offQty).Load()
	case ticket.KindHold:
		return rec.Qty == s.i64(offQty).Load() && rec.Buyer == s.buyer() && rec.Hold == s.holdID(rec.Seq)
	}
	return rec.Qty == s.i64(offQty).Load() && rec.Buyer == s.buyer()
}
