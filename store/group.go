package store

import (
	"context"
	"errors"
	"io/fs"

	"github.com/ticketd/ticket/store/group"
	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/ticket"
)

// errAlone is a buy group commit did not serve: it is made alone.
var errAlone = group.ErrAlone

// groupBuy is Buy through group commit. It returns errAlone, having
// changed nothing, when group commit cannot serve the buy, and the caller
// then buys alone.
func (s *Store) groupBuy(ctx context.Context, buyer string, qty int64) (Receipt, error) {
	sale, state, err := s.groupRequest(ctx, group.Request{Kind: ticket.KindSale, Buyer: buyer, Qty: qty})
	return Receipt{Sale: sale, State: state}, err
}

// groupRequest makes req (a buy, hold or confirm) through group commit,
// as groupBuy does.
func (s *Store) groupRequest(ctx context.Context, req group.Request) (ticket.Record, ticket.State, error) {
	if s.opts.NoGroup {
		return ticket.Record{}, ticket.State{}, errAlone
	}
	p, l, err := s.prepare()
	if err != nil {
		return ticket.Record{}, ticket.State{}, err
	}
	reg, err := group.Open(p.journal)
	if errors.Is(err, fs.ErrNotExist) {
		// The region is named after the journal, which a seed file has
		// not had yet. Nothing is created beside a file that is refused.
		if _, _, err := loadState(p.ticket); err != nil {
			return ticket.Record{}, ticket.State{}, err
		}
		if err := createJournal(p.journal, l); err != nil {
			return ticket.Record{}, ticket.State{}, err
		}
		reg, err = group.Open(p.journal)
	}
	if err != nil {
		return ticket.Record{}, ticket.State{}, errAlone
	}
	req.Durable, req.NoWait = !s.opts.NoSync, s.opts.NoWait
	rec, state, err := reg.Buy(ctx, &leader{s: s, p: p, l: l}, req)
	if errors.Is(err, group.ErrUnsettled) {
		err = unsettled{err}
	}
	return rec, state, err
}

// unsettled is group commit's ErrUnsettled in the store's words: a sale
// that may stand, ErrUnconfirmed.
type unsettled struct{ error }

func (e unsettled) Is(target error) bool { return target == ErrUnconfirmed }
func (e unsettled) Unwrap() error        { return e.error }

// leader is the file store as group commit sees it: the sale's lock, and
// its transaction (see group.Sale).
type leader struct {
	s *Store
	p paths
	l files.Like
}

// LockPath names the sale's lock file.
func (ld *leader) LockPath() string { return ld.p.lock }

// TryLock takes the sale's lock if it is free.
func (ld *leader) TryLock() (func(), bool, error) { return keep(ld.p).lock.TryLock(ld.l) }

// Lock waits for the sale's lock on behalf of every sleeping buyer.
func (ld *leader) Lock(ctx context.Context) (func(), error) {
	return keep(ld.p).lock.Lock(ctx, ld.l)
}

// Commit runs the transaction with the batch's records, fsynced if a
// request in it is durable, and tells the batch how it ended while the
// journal is still locked.
func (ld *leader) Commit(b *group.Batch) error {
	err := ld.s.locked(ld.p, ld.l, func(state ticket.State, j *journal) (ticket.State, []ticket.Record, error) {
		next, records, err := b.Decide(state, j)
		if err == nil && b.Durable() {
			j.noSync = false // a --no-sync leader fsyncs a durable buyer's batch
		}
		return next, records, err
	}, func(err error) {
		switch {
		case err == nil:
			b.Done(group.Committed)
		case errors.Is(err, ErrUnconfirmed):
			b.Done(group.Unconfirmed)
		default:
			b.Done(group.Failed)
		}
	})
	return err
}
