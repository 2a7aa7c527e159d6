package cliredis

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// UnsafeBuy buys without the lock, for the demonstration of what the lock
// prevents: it reads the state hash, decides, and writes "left" and
// "version" back in a second command, as a client without the script
// would, and writes no journal.
func (s Sale) UnsafeBuy(ctx context.Context, buyer string, qty int64) (store.Receipt, error) {
	c, key, where := s.Client(), s.StateKey(), s.Redacted()
	ctx = context.WithoutCancel(ctx) // a half-done write is the demonstration's, not a signal's
	vals, err := c.HMGet(ctx, key, "total", "left", "version").Result()
	if err != nil {
		return store.Receipt{}, fmt.Errorf("%s: buy: %v: %w", where, err, store.ErrUnreachable)
	}
	if vals[0] == nil && vals[1] == nil && vals[2] == nil {
		return store.Receipt{}, fmt.Errorf("%s does not exist: %w", where, store.ErrNotFound)
	}
	var n [3]int64
	for i, v := range vals {
		text, _ := v.(string)
		if n[i], err = strconv.ParseInt(text, 10, 64); err != nil {
			return store.Receipt{}, fmt.Errorf("%s: the state hash %s does not hold a sale: %w", where, key, ticket.ErrInvalid)
		}
	}
	state, err := ticket.At(n[2], n[1], n[0])
	if err != nil {
		return store.Receipt{}, fmt.Errorf("%s: %w", where, err)
	}
	next, err := state.Take(qty)
	if err != nil {
		return store.Receipt{State: state}, err
	}
	if err := c.HSet(ctx, key, "left", next.Left(), "version", next.Version()).Err(); err != nil {
		return store.Receipt{State: state}, fmt.Errorf("%s: buy: %v: %w", where, err, store.ErrUnreachable)
	}
	sale := ticket.Record{Seq: next.Version(), Buyer: buyer, Qty: qty, Left: next.Left(), PID: os.Getpid()}
	return store.Receipt{Sale: sale, State: next}, nil
}
