package redis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// Booking on Redis: every request is one script (bookSource), which
// releases the holds that lapsed first, then makes its record, atomically.
// Each buyer's holding under a limit is one field of a hash, changed by
// ticket.Record.Holding's rule; the open holds are a hash by id and a
// sorted set by expiry; a closed hold's closing record and each sale's
// returned tickets are hashes too: no request scans the journal or the
// buyers, except a return, which finds its sale by a binary search of the
// stream, and a change of the limit, which reads every buyer's holding.

var _ store.Booking = (*Store)(nil)

// Hold takes qty tickets out of the stock into held for buyer, for d (by
// the server's clock), with a fresh request id: see HoldRequest.
func (r *Store) Hold(ctx context.Context, buyer string, qty int64, d time.Duration) (store.HoldReceipt, error) {
	return r.HoldRequest(ctx, NewRequestID(), buyer, qty, d)
}

// HoldRequest is Hold as request id: a request id answered already gets
// its first outcome again (the same hold), and holds nothing more. It
// returns ticket.ErrSoldOut when fewer than qty are left, ticket.ErrLimit
// when the buyer would pass the sale's per-buyer limit, store.ErrDuration
// for a d that is not positive.
func (r *Store) HoldRequest(ctx context.Context, id, buyer string, qty int64, d time.Duration) (store.HoldReceipt, error) {
	if err := ticket.CheckRequest(buyer, qty); err != nil {
		return store.HoldReceipt{}, err
	}
	if err := store.CheckHold(d, time.Now()); err != nil {
		return store.HoldReceipt{}, err
	}
	ms := int64(d / time.Millisecond) // the server counts in ms: rounded up, never 0
	if d%time.Millisecond != 0 {
		ms++
	}
	a, err := r.book(ctx, "hold", id, buyer, qty, ms, fmt.Sprintf("%08x", rand.Uint32()))
	if err != nil {
		switch {
		case errors.Is(err, ticket.ErrLimit):
			return store.HoldReceipt{State: a.state}, fmt.Errorf("%w: %s has %s of at most %d, wanted %d more", err, buyer, a.detail, a.state.Limit(), qty)
		case errors.Is(err, ticket.ErrSoldOut):
			return store.HoldReceipt{State: a.state}, fmt.Errorf("%w, wanted %d", err, qty)
		}
		return store.HoldReceipt{State: a.state}, err
	}
	return store.HoldReceipt{Hold: a.rec, State: a.state}, nil
}

// Confirm turns the open hold id into a sale, with a fresh request id: see
// ConfirmRequest.
func (r *Store) Confirm(ctx context.Context, id string) (store.Receipt, error) {
	return r.ConfirmRequest(ctx, NewRequestID(), id)
}

// ConfirmRequest turns the open hold into a sale, as request id. A hold
// that expired (by the server's clock) or was released is
// ticket.ErrHoldLapsed; a hold confirmed already returns that first
// confirm (Replayed set) and sells nothing more; an id that names no hold
// of this sale is ticket.ErrUnknownHold.
func (r *Store) ConfirmRequest(ctx context.Context, id, hold string) (store.Receipt, error) {
	if _, err := ticket.HoldSeq(hold); err != nil {
		return store.Receipt{}, fmt.Errorf("%s: %w", r.where(), err)
	}
	a, err := r.book(ctx, "confirm", id, hold)
	return store.Receipt{Sale: a.rec, State: a.state, Replayed: a.replayed}, r.noHold(err, hold)
}

// noHold names the hold in a refusal of an id that names no hold of the sale.
func (r *Store) noHold(err error, hold string) error {
	if err == ticket.ErrUnknownHold {
		return fmt.Errorf("%s: no hold %s in this sale: %w", r.where(), hold, ticket.ErrUnknownHold)
	}
	return err
}

// Release gives the open hold id's tickets back to the stock, with a fresh
// request id: see ReleaseRequest.
func (r *Store) Release(ctx context.Context, id string) (ticket.Record, error) {
	return r.ReleaseRequest(ctx, NewRequestID(), id)
}

// ReleaseRequest gives the open hold's tickets back, as request id. A hold
// no longer open is ticket.ErrHoldLapsed (released or lapsed already) or
// store.ErrConfirmed; an unknown id ticket.ErrUnknownHold.
func (r *Store) ReleaseRequest(ctx context.Context, id, hold string) (ticket.Record, error) {
	if _, err := ticket.HoldSeq(hold); err != nil {
		return ticket.Record{}, fmt.Errorf("%s: %w", r.where(), err)
	}
	a, err := r.book(ctx, "release", id, hold)
	if errors.Is(err, store.ErrConfirmed) {
		err = fmt.Errorf("%s: hold %s was confirmed as sale #%s: %w", r.where(), hold, a.detail, store.ErrConfirmed)
	}
	return a.rec, r.noHold(err, hold)
}

// Return gives back qty tickets (0: all it still has) of sale number sale,
// with a fresh request id: see ReturnRequest.
func (r *Store) Return(ctx context.Context, sale, qty int64) (ticket.Record, error) {
	return r.ReturnRequest(ctx, NewRequestID(), sale, qty)
}

// ReturnRequest gives back qty tickets (0: all it still has) of sale number
// sale, a sale or a confirmed hold, as request id. It refuses a number
// that is no sale (ticket.ErrUnknownSale) and more than the sale still has
// (ticket.ErrReturn).
func (r *Store) ReturnRequest(ctx context.Context, id string, sale, qty int64) (ticket.Record, error) {
	if qty < 0 {
		return ticket.Record{}, ticket.ErrQuantity
	}
	if sale < 1 {
		return ticket.Record{}, fmt.Errorf("%s: sale #%d: %w", r.where(), sale, ticket.ErrUnknownSale)
	}
	a, err := r.book(ctx, "return", id, sale, qty)
	switch {
	case errors.Is(err, ticket.ErrUnknownSale):
		err = fmt.Errorf("%s: no sale #%d in this sale's journal (a sale, or a confirmed hold): %w", r.where(), sale, ticket.ErrUnknownSale)
	case errors.Is(err, ticket.ErrReturn):
		has, _ := strconv.ParseInt(a.detail, 10, 64)
		n := qty
		if n == 0 {
			n = has
		}
		err = fmt.Errorf("%s: sale #%d has %d %s to return, not %d: %w", r.where(), sale, has, plural(has, "ticket", "tickets"), n, ticket.ErrReturn)
	}
	return a.rec, err
}

// Restock changes the stock by delta tickets, with a fresh request id: see
// RestockRequest.
func (r *Store) Restock(ctx context.Context, delta int64) (ticket.Record, ticket.State, error) {
	return r.RestockRequest(ctx, NewRequestID(), delta)
}

// RestockRequest changes the stock by delta tickets, as request id: more
// than 0 adds them (the total grows), less than 0 takes them out of what
// is left (the total falls), never below none left (ticket.ErrSoldOut).
func (r *Store) RestockRequest(ctx context.Context, id string, delta int64) (ticket.Record, ticket.State, error) {
	if delta == 0 || delta == math.MinInt64 {
		return ticket.Record{}, ticket.State{}, ticket.ErrQuantity
	}
	op, n := "add", delta
	if delta < 0 {
		op, n = "remove", -delta
	}
	a, err := r.book(ctx, op, id, n)
	if errors.Is(err, ticket.ErrSoldOut) {
		err = fmt.Errorf("%s: %w: %d left, cannot remove %d", r.where(), ticket.ErrSoldOut, a.state.Left(), n)
	}
	return a.rec, a.state, err
}

// SetLimit changes the per-buyer limit, with a fresh request id: see
// SetLimitRequest.
func (r *Store) SetLimit(ctx context.Context, k int64) (ticket.Record, ticket.State, error) {
	return r.SetLimitRequest(ctx, NewRequestID(), k)
}

// SetLimitRequest changes the per-buyer limit of a sale started with one
// to k (1 or more), as request id. It refuses, with ticket.ErrLimit, a
// limit below what a buyer already has, and store.ErrNoLimit for a sale
// started without a limit. It reads every buyer's holding.
func (r *Store) SetLimitRequest(ctx context.Context, id string, k int64) (ticket.Record, ticket.State, error) {
	if k < 1 {
		return ticket.Record{}, ticket.State{}, ticket.ErrQuantity
	}
	a, err := r.book(ctx, "limit", id, k)
	if errors.Is(err, ticket.ErrLimit) {
		buyer, has, _ := strings.Cut(a.detail, "\t")
		err = fmt.Errorf("%s: buyer %q already has %s tickets, more than a limit of %d: %w", r.where(), buyer, has, k, ticket.ErrLimit)
	}
	return a.rec, a.state, err
}

// Limit returns the sale's per-buyer limit, 0 for none: one read of the
// state hash, cheaper than Read, which lists the open holds.
func (r *Store) Limit(ctx context.Context) (int64, error) {
	var v []any
	err := r.call(ctx, func(ctx context.Context) error {
		var err error
		v, err = r.client.HMGet(ctx, r.stateKey(), "limit", "version").Result()
		return err
	})
	if err != nil {
		if isWrongType(err) {
			return 0, r.wrongType(ctx, r.stateKey())
		}
		return 0, r.fail("read", err)
	}
	if v[1] == nil {
		_, err := r.Read() // no state: Read says why
		return 0, err
	}
	s, _ := v[0].(string)
	if v[0] == nil {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: %w", r.where(), &ticket.FormatError{Problem: fmt.Sprintf("\"limit\" of the state hash is %q, not a whole number", s)})
	}
	return n, nil
}

// Settle records, as lapsed, the holds that expired by the server's clock
// (what a reader only counts, and the next script that changes the sale
// would record first), and returns the state after.
func (r *Store) Settle(ctx context.Context) (ticket.State, error) {
	if err := r.settle(ctx); err != nil {
		return ticket.State{}, err
	}
	return r.Read()
}

// settle records, as lapsed, the holds that expired (up to lapseBound a
// script, until none is left): what the next script that changes the sale
// would do first.
func (r *Store) settle(ctx context.Context) error {
	for range 1000 {
		snap, err := r.snapshot(ctx)
		if err != nil {
			return err
		}
		if len(expiredHolds(snap.holds, snap.now)) == 0 {
			return nil
		}
		if _, err := r.book(ctx, "settle", NewRequestID()); err != nil {
			return err
		}
	}
	return nil
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// answer is a booking script's outcome: the record it made (or found), the
// state after it, and what a refusal says.
type answer struct {
	rec      ticket.Record
	state    ticket.State
	replayed bool
	detail   string // a refusal's numbers, as the script gave them
}

// book runs bookSource for op, as request id, with args, and turns its
// answer into a record and a state, or a refusal into its sentinel error.
func (r *Store) book(ctx context.Context, op, id string, args ...any) (answer, error) {
	var a answer
	if err := CheckRequestID(id); err != nil {
		return a, err
	}
	if err := ctx.Err(); err != nil && errors.Is(err, context.Canceled) {
		return a, fmt.Errorf("%s: interrupted before the %s was sent, nothing was changed: %w", r.where(), op, err)
	}
	if r.client.PoolStats().IdleConns == 0 {
		if err := r.call(ctx, func(ctx context.Context) error { return r.client.Ping(ctx).Err() }); err != nil {
			return a, r.bookNotSent(op, err)
		}
	}
	ttl := RequestTTL
	if testRequestTTL > 0 {
		ttl = testRequestTTL
	}
	argv := append([]any{r.flags(), r.waitReplicas, op, time.Now().UTC().Format(time.RFC3339Nano), os.Getpid(), id, ttl.Milliseconds(), lapseBound}, args...)
	var out string
	err := r.call(ctx, func(ctx context.Context) error {
		var err error
		out, err = bookScript().Run(ctx, r.client, r.scriptKeys(), argv...).Text()
		return err
	})
	if err != nil {
		var rerr goredis.Error
		var de *dialError
		if errors.As(err, &rerr) || errors.As(err, &de) {
			return a, r.bookNotSent(op, err) // the script raises only before it writes
		}
		return a, fmt.Errorf("%s: the %s was sent and its answer lost (%v): outcome unknown; the same request with the same request id %s, sent again, tells (it never acts twice): %w", r.where(), op, err, id, store.ErrUnreachable)
	}
	if err, ok := r.refused(out, "a "+op); ok {
		return a, err
	}
	var late string
	if rest, ok := strings.CutPrefix(out, "written "); ok {
		out, late, _ = strings.Cut(rest, "\n")
	}
	a, err = r.parseBook(op, id, out)
	if err == nil && late != "" {
		err = fmt.Errorf("%s: %s #%d is in the journal, but the server refused a later write of it (%s): the sale's state may not show it; verify the sale: %w", r.where(), op, a.rec.Seq, late, store.ErrUnconfirmed)
	}
	if err == nil && r.waitReplicas > 0 && a.rec.Seq != 0 && !a.replayed {
		err = r.waitFor(ctx, store.Receipt{Sale: a.rec})
	}
	return a, err
}

// bookNotSent is the error for a booking request that changed nothing
// because it could not be run (see notSent).
func (r *Store) bookNotSent(op string, err error) error {
	var ie *interruptedError
	if errors.As(err, &ie) {
		return fmt.Errorf("%s: interrupted before the %s was sent, nothing was changed: %w", r.where(), op, ie.err)
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		if isAuth(msg) || notReady(msg) {
			return fmt.Errorf("%s: %s; nothing was changed: %w", r.where(), serverWhy(msg), store.ErrUnreachable)
		}
		return fmt.Errorf("%s: the server refused the %s, nothing was changed: %s", r.where(), op, msg)
	}
	var de *dialError
	if errors.As(err, &de) {
		return fmt.Errorf("%s: cannot connect (%v); nothing was changed: %w", r.where(), de.err, store.ErrUnreachable)
	}
	return fmt.Errorf("%s: the server did not answer before the %s was sent (%v); nothing was changed: %w", r.where(), op, err, store.ErrUnreachable)
}

// parseBook reads a booking script's answer (see bookSource).
func (r *Store) parseBook(op, id, out string) (answer, error) {
	var a answer
	if what, ok := strings.CutPrefix(out, "mismatch\t"); ok {
		if what == op {
			what += " of other arguments"
		}
		return a, fmt.Errorf("%s: request id %s was used for another request (a %s), not this %s: it answers only for that one: %w", r.where(), id, what, op, ErrRequestID)
	}
	f := strings.Split(out, "\t")
	bad := func() (answer, error) {
		return a, fmt.Errorf("%s: unexpected answer from the %s script: %q", r.where(), op, out)
	}
	if len(f) < 6 {
		if f[0] == "invalid" {
			return a, fmt.Errorf("%s: %w", r.where(), &ticket.FormatError{Problem: "the sale's state hash or a hold's entry does not hold together: nothing was changed"})
		}
		return bad()
	}
	st, err := parseStateLine(f[len(f)-5:])
	if err != nil {
		return bad()
	}
	a.state = st
	f = f[:len(f)-5]
	kind := f[0]
	if kind == "replay" {
		a.replayed = true
		f = f[1:]
		kind = f[0]
	}
	switch kind {
	case "ok", "first", "lapsed":
		if len(f) != 15 {
			return bad()
		}
		rec, err := parseRecordLine(f[1:])
		if err != nil {
			return bad()
		}
		a.rec = rec
		switch kind {
		case "first":
			a.replayed = true
		case "lapsed":
			a.rec = ticket.Record{}
			return a, fmt.Errorf("%s: hold %s %s (#%d): its %d %s back in stock: %w", r.where(), rec.Hold, rec.Reason, rec.Seq, rec.Qty, plural(rec.Qty, "ticket is", "tickets are"), ticket.ErrHoldLapsed)
		}
		return a, nil
	case "settled":
		return a, nil
	case "soldout":
		return a, fmt.Errorf("%s: %w: %d left", r.where(), ticket.ErrSoldOut, st.Left())
	case "limit":
		a.detail = strings.Join(f[1:], "\t")
		return a, fmt.Errorf("%s: %w", r.where(), ticket.ErrLimit)
	case "above":
		a.detail = strings.Join(f[1:], "\t")
		return a, ticket.ErrLimit
	case "unknownhold":
		return a, ticket.ErrUnknownHold
	case "confirmed":
		a.detail = strings.Join(f[1:], "")
		return a, store.ErrConfirmed
	case "unknownsale":
		return a, ticket.ErrUnknownSale
	case "return":
		a.detail = strings.Join(f[1:], "")
		return a, ticket.ErrReturn
	case "nolimit":
		return a, fmt.Errorf("%s: %w (it is set when the sale starts)", r.where(), store.ErrNoLimit)
	case "toobig":
		return a, fmt.Errorf("%s: the numbers would pass %d, the most a Redis sale counts: nothing was changed: %w", r.where(), int64(MaxCount), ticket.ErrInvalid)
	}
	return bad()
}

// parseStateLine reads a state as the scripts give it: version, left,
// held, total, limit.
func parseStateLine(f []string) (ticket.State, error) {
	var n [5]int64
	for i := range n {
		x, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return ticket.State{}, err
		}
		n[i] = x
	}
	// The open holds are not in an answer: Read lists them.
	st, err := ticket.Booked(n[0], n[1], n[2], n[3])
	if err != nil {
		return st, err
	}
	return st.WithLimit(n[4], 0)
}

// recordNames are the members of a record as the scripts give them.
var recordNames = []string{"seq", "kind", "hold", "sale", "buyer", "qty", "reason", "left", "held", "total", "limit", "expires", "pid", "time"}

// parseRecordLine reads a record as the scripts give it (see bookCommon),
// as strictly as a journal entry.
func parseRecordLine(f []string) (ticket.Record, error) {
	fields := map[string]string{}
	for i, name := range recordNames {
		if f[i] != "" && !(name == "held" && f[i] == "0") && !(name == "limit" && f[1] != "limit") {
			fields[name] = f[i]
		}
	}
	rec, err := ticket.ParseFields(fields)
	rec.Time, rec.Expires = rec.Time.UTC(), rec.Expires.UTC()
	return rec, err
}
