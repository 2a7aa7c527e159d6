//go:build linux

package group

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/store/lock"
	"github.com/ticketd/ticket/ticket"
)

// Buy posts req in a slot of r and waits for its outcome, leading the
// commit of every pending request whenever it gets sale's lock first (see
// the package documentation). It returns the sale made and the state after
// it; ticket.ErrSoldOut with the state that refused it; ErrAlone, having
// bought nothing, when the caller must buy alone; an error wrapping
// ErrUnsettled, or the commit's own error, when the sale may stand; or the
// error of a commit this buyer led, its own request among them, which
// failed: nothing was bought.
//
// If ctx is done (or req.NoWait and the lock was held when first tried)
// before any leader took the request, it is withdrawn: Buy returns
// lock.WaitError (one wrapping lock.ErrLocked for NoWait), and nothing was
// bought.
//
// A hold or a confirm goes the same way: the record returned is the hold
// (its id in Hold, its expiry in Expires) or the confirm (its hold's buyer
// and qty). A confirm of a hold that is no longer open, and any request
// the sale refuses for another reason than tickets sold out (the
// per-buyer limit), are sent back with ErrAlone: made alone, they get
// their full answer.
func (r *Region) Buy(ctx context.Context, sale Sale, req Request) (ticket.Record, ticket.State, error) {
	if len(req.Buyer) > maxSlotBuyer || !groupable(req) {
		return ticket.Record{}, ticket.State{}, ErrAlone
	}
	sl, ok := r.claim()
	if !ok {
		return ticket.Record{}, ticket.State{}, ErrAlone
	}
	sl.post(req)
	stop := context.AfterFunc(ctx, func() { wakeSlot(sl) })
	defer stop()
	b := &buyer{ctx: ctx, r: r, sl: sl, sale: sale, req: req, me: self}
	for {
		if out := b.round(); out != nil {
			return out.rec, out.state, out.err
		}
	}
}

// groupable reports whether a slot can carry req.
func groupable(req Request) bool {
	switch req.Kind {
	case ticket.KindSale:
		return true
	case ticket.KindHold:
		return req.For > 0
	case ticket.KindConfirm, ticket.KindRelease:
		_, err := ticket.HoldSeq(req.Hold)
		return err == nil
	case ticket.KindAdd, ticket.KindRemove:
		return req.Qty > 0
	}
	return false
}

// buyer is one Buy's request, from post to outcome.
type buyer struct {
	ctx      context.Context
	r        *Region
	sl       slot
	sale     Sale
	req      Request
	me       int32
	tried    bool // the lock was tried at least once
	failures int  // commits led by this buyer that failed
}

// result is the end of a Buy.
type result struct {
	rec   ticket.Record
	state ticket.State
	err   error
}

func done(err error) *result { return &result{err: err} }

// round is one turn of the loop the package documentation describes: it
// returns the outcome, or nil to go round again.
func (b *buyer) round() *result {
	if waitsShort() {
		passScheduler()
	}
	w := b.sl.wake().Load()
	if out := b.answered(); out != nil {
		return out
	}
	if b.tried && b.givingUp() && b.withdraw() {
		// Given up (a deadline, a signal, no wait) before any leader
		// took the request: nothing was bought, as when waiting in
		// flock(2).
		return done(b.gaveUp())
	}
	b.tried = true
	unlock, ok, err := b.sale.TryLock()
	if err != nil && b.withdraw() {
		return done(err)
	}
	if !ok && !b.givingUp() && b.r.i32(offSuccessor).CompareAndSwap(0, b.me) {
		// Wait in flock(2) for whoever holds the lock, on behalf of every
		// sleeper.
		unlock, err = b.sale.Lock(b.ctx)
		b.r.i32(offSuccessor).CompareAndSwap(b.me, 0)
		if err != nil {
			b.r.wakePending() // one of them takes over as successor
			return nil
		}
		ok = true
	}
	if ok {
		return b.lead(unlock)
	}
	if b.givingUp() && b.withdraw() {
		return done(b.gaveUp())
	}
	if b.sleep(w) {
		return nil
	}
	// The safety net: nobody woke this buyer for seam.GroupSafety. Its next
	// round retries the lock; a dead successor is replaced.
	if succ := b.r.i32(offSuccessor).Load(); succ != 0 && !running(succ) {
		b.r.i32(offSuccessor).CompareAndSwap(succ, 0)
	}
	return nil
}

// answered returns the outcome a leader published in the slot, if any.
func (b *buyer) answered() *result {
	st := b.sl.state().Load()
	if b.sl.owner().Load() != b.me || st == slotFree {
		// Freed by a leader that took this process for dead: it can only
		// be in another PID namespace, where nothing is certain.
		return done(fmt.Errorf("%s: this buyer's request was dropped by another process (another PID namespace?); check the books before buying again: %w", b.sale.LockPath(), ErrUnsettled))
	}
	switch st {
	case slotSold, slotSoldOut:
		out := b.sl.receipt(b.req)
		b.sl.release()
		return out
	case slotRetry:
		b.sl.release()
		return done(ErrAlone)
	}
	return nil
}

// lead commits every pending request with the lock held, unlocks, wakes
// their owners and, if the commit failed, settles this buyer's own
// request: the error goes to it, as if it had bought alone (the others
// buy alone).
func (b *buyer) lead(unlock func()) *result {
	batch := b.r.begin()
	var lerr error
	if batch != nil {
		lerr = b.sale.Commit(batch)
	}
	// A request still pending is withdrawn before the unlock, or the next
	// leader could sell it meanwhile.
	withdrawn := lerr != nil && b.withdraw()
	unlock()
	b.r.wakeAfterUnlock(b.sl)
	if lerr == nil {
		return nil
	}
	switch st := b.sl.state().Load(); {
	case errors.Is(lerr, errStale) && st == slotRetry:
		b.sl.release()
		return done(ErrAlone) // buy alone, from the journal there is now
	case withdrawn:
		return done(lerr)
	case st == slotRetry:
		b.sl.release()
		return done(lerr)
	case st == slotTaken && batch.outcome == Unconfirmed:
		// The intent, which may stand: its line is beyond the ticket
		// file. This buyer returns with it; the slot is abandoned, so
		// that no later leader decides it again.
		if out := b.sl.abandon(b.req); out != nil {
			return out
		}
		out := b.sl.receipt(b.req)
		out.err = lerr
		return out
	}
	if b.failures++; b.failures >= 3 && b.sl.state().Load() == slotTaken {
		// A crashed leader's request that no commit manages to settle:
		// its sale may stand.
		if out := b.sl.abandon(b.req); out != nil {
			return out
		}
		return done(fmt.Errorf("%w: %w", ErrUnsettled, lerr))
	}
	return nil
}

// givingUp reports whether the buyer should stop waiting for the lock.
func (b *buyer) givingUp() bool { return b.req.NoWait || b.ctx.Err() != nil }

// gaveUp is the error of a buyer that gave up.
func (b *buyer) gaveUp() error {
	if b.ctx.Err() == nil { // NoWait
		return fmt.Errorf("%s: %w", b.sale.LockPath(), lock.ErrLocked)
	}
	return lock.WaitError(b.ctx, b.sale.LockPath())
}

// withdraw takes back a request no leader has taken yet, and reports
// whether it did.
func (b *buyer) withdraw() bool {
	if b.sl.state().CompareAndSwap(slotPending, slotFree) {
		b.sl.release()
		return true
	}
	return false
}

// abandon gives up a taken slot whose outcome its owner cannot wait for:
// the next leader frees it without deciding it again (whatever a leader
// already committed for it stands). If a leader published an outcome
// first, abandon returns that instead, freeing the slot; otherwise nil.
func (s slot) abandon(req Request) *result {
	if s.state().CompareAndSwap(slotTaken, slotAbandoned) {
		return nil
	}
	switch s.state().Load() {
	case slotSold, slotSoldOut:
		out := s.receipt(req)
		s.release()
		return out
	}
	return nil
}

// receipt reads the outcome (or the intent) of the owner's own request.
func (s slot) receipt(req Request) *result {
	seq, left, total, sold := s.i64(offSeq).Load(), s.i64(offLeft).Load(), s.i64(offTotal).Load(), s.i64(offSold).Load()
	// What is neither left nor sold is held (a sale with open holds).
	rec := ticket.Record{Seq: seq, Kind: req.Kind, Buyer: req.Buyer, Qty: req.Qty, Left: left, Held: total - left - sold, Total: total, PID: int(self), Time: time.Unix(0, s.i64(offTime).Load()).UTC()}
	st, ok := rec.Books()
	switch req.Kind {
	case ticket.KindSale:
		rec.Total = 0 // a sale's line does not carry it
	case ticket.KindHold:
		rec.Hold = s.holdID(seq)
		rec.Expires = time.Unix(0, s.i64(offExpires).Load()).UTC()
	case ticket.KindConfirm, ticket.KindRelease:
		rec.Hold, rec.Buyer, rec.Qty = req.Hold, s.buyer(), s.i64(offQty).Load()
		if req.Kind == ticket.KindRelease {
			rec.Reason, rec.PID = ticket.ReasonReleased, 0
		}
	case ticket.KindAdd, ticket.KindRemove:
		rec.Buyer = ""
	}
	if !ok {
		return done(fmt.Errorf("group commit: a leader published a state that is not one: #%d, %d left, %d sold of %d", seq, left, sold, total))
	}
	if s.state().Load() == slotSoldOut {
		if req.Kind == ticket.KindRemove {
			return &result{state: st, err: fmt.Errorf("%w: %d left, cannot remove %d", ticket.ErrSoldOut, left, req.Qty)}
		}
		return &result{state: st, err: fmt.Errorf("%w: %d left, wanted %d", ticket.ErrSoldOut, left, req.Qty)}
	}
	return &result{rec: rec, state: st}
}

// wakeAfterUnlock is the wake-up a leader owes once it has unlocked: every
// slot with an outcome (or left taken by a failed commit), and the pending
// ones when no successor will take the lock for them. The leader's own
// slot, own, is not woken: its owner is awake, and reads it next.
func (r *Region) wakeAfterUnlock(own slot) {
	if seam.NoGroupWake {
		return
	}
	seam.Crash(seam.GroupWake)
	pending := false
	for i := range groupSlots {
		s := r.slot(i)
		if s.owner().Load() == 0 {
			continue
		}
		switch s.state().Load() {
		case slotTaken, slotSold, slotSoldOut, slotRetry:
			if s == own {
				continue
			}
			wakeSlot(s)
		case slotPending:
			pending = true
		}
	}
	if !pending {
		return
	}
	if succ := r.i32(offSuccessor).Load(); succ != 0 {
		if running(succ) {
			return // it takes the lock next, and commits them
		}
		r.i32(offSuccessor).CompareAndSwap(succ, 0)
	}
	r.wakePending()
}

// wakePending wakes every pending slot's owner.
func (r *Region) wakePending() {
	for i := range groupSlots {
		if s := r.slot(i); s.owner().Load() != 0 && s.state().Load() == slotPending {
			wakeSlot(s)
		}
	}
}
