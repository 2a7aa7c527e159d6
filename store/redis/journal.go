package redis

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/ticket"
)

// snap is a sale's state and the end of its journal as they were at one
// moment: the journal's entries up to last belong with state.
type snap struct {
	state   ticket.State
	gen     string // the sale's generation: init and restore give it a new one
	last    string // the journal's last entry id, "" if it is empty
	entries int64  // entries in the journal, up to last
}

// snapshot reads the state and the end of the journal as they were at one
// moment, without a transaction (a server out of memory refuses MULTI)
// and without a script (a read-only user may not run one): it reads the
// state's version before and after the journal's end, in one round trip,
// and tries again if a buy came between. Every buy changes the version, and
// every reset the generation. A sale whose buyers never pause long enough
// is read in a MULTI/EXEC transaction instead.
func (r *Store) snapshot(ctx context.Context) (snap, error) {
	var s snap
	for attempt := 0; attempt < 50; attempt++ {
		var before, after *goredis.SliceCmd
		var last *goredis.XMessageSliceCmd
		var n *goredis.IntCmd
		read := func(p goredis.Pipeliner) error {
			before = p.HMGet(ctx, r.stateKey(), "total", "left", "version", "gen")
			last = p.XRevRangeN(ctx, r.journalKey(), "+", "-", 1)
			n = p.XLen(ctx, r.journalKey())
			after = p.HMGet(ctx, r.stateKey(), "version", "gen")
			return nil
		}
		err := r.call(ctx, func(ctx context.Context) error {
			var err error
			if attempt < 49 {
				_, err = r.client.Pipelined(ctx, read)
			} else {
				_, err = r.client.TxPipelined(ctx, read)
			}
			return err
		})
		if err != nil {
			switch {
			case isWrongType(before.Err()):
				return s, r.wrongType(ctx, r.stateKey())
			case isWrongType(last.Err()):
				return s, r.wrongType(ctx, r.journalKey())
			}
			return s, r.fail("read", err)
		}
		b, a := before.Val(), after.Val()
		if fmt.Sprint(b[2:]) != fmt.Sprint(a) {
			continue // a buy, or a reset, came between: read again
		}
		s.entries = n.Val()
		if m := last.Val(); len(m) > 0 {
			s.last = m[0].ID
		}
		if b[0] == nil && b[1] == nil && b[2] == nil {
			return s, r.missing(s.entries)
		}
		s.gen, _ = b[3].(string)
		s.state, err = r.parseState(b)
		return s, err
	}
	return s, fmt.Errorf("%s: the sale kept changing while it was read: %w", r.where(), store.ErrUnreachable)
}

func isWrongType(err error) bool {
	var rerr goredis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "WRONGTYPE")
}

func (r *Store) wrongType(ctx context.Context, key string) error {
	var typ string
	_ = r.call(ctx, func(ctx context.Context) error {
		typ = r.client.Type(ctx, key).Val()
		return nil
	})
	return fmt.Errorf("%s: %w", r.where(), &ticket.FormatError{Problem: fmt.Sprintf("the key %s is a %s, not the sale's: left as it is", key, typ)})
}

// pages yields the journal's entries from its start to last, inclusive,
// in pages of pageSize() entries, one command each, so that no command
// holds the server for long however long the journal is. It reports
// progress as what. c reads them (a client, or the connection of a
// transaction).
func (r *Store) pages(ctx context.Context, c goredis.Cmdable, last, what string, total int64) iter.Seq2[[]goredis.XMessage, error] {
	return func(yield func([]goredis.XMessage, error) bool) {
		if last == "" {
			return
		}
		start, done := "-", int64(0)
		for {
			var msgs []goredis.XMessage
			err := r.call(ctx, func(ctx context.Context) error {
				var err error
				msgs, err = c.XRangeN(ctx, r.journalKey(), start, last, int64(pageSize())).Result()
				return err
			})
			if err != nil {
				if isWrongType(err) {
					yield(nil, r.wrongType(ctx, r.journalKey()))
				} else {
					yield(nil, r.fail("read journal", err))
				}
				return
			}
			if len(msgs) == 0 {
				return
			}
			done += int64(len(msgs))
			r.report(what, done, total)
			if !yield(msgs, nil) || len(msgs) < pageSize() || msgs[len(msgs)-1].ID == last {
				return
			}
			start = "(" + msgs[len(msgs)-1].ID
		}
	}
}

// journalProblem is an error about the journal that wraps store.ErrJournal and
// ticket.ErrInvalid.
func (r *Store) journalProblem(problem string) error {
	return &journalError{where: fmt.Sprintf("%s: journal %s", r.where(), r.journalKey()), problem: problem}
}

// saleFromEntry reads one stream entry as a sale, as strictly as a line
// of a ticket file's journal (ticket.ParseFields): the entry's fields are
// a sale record's, and its request id.
func (r *Store) saleFromEntry(m goredis.XMessage) (ticket.Record, error) {
	fields := make(map[string]string, len(m.Values))
	for k, v := range m.Values {
		if k == "request" {
			continue
		}
		text, ok := v.(string)
		if !ok {
			return ticket.Record{}, r.journalProblem(fmt.Sprintf("entry %s: %s is not a string", m.ID, k))
		}
		fields[k] = text
	}
	s, err := ticket.ParseFields(fields)
	if err != nil {
		return ticket.Record{}, r.journalProblem(fmt.Sprintf("entry %s: %v", m.ID, err))
	}
	if s.Kind != ticket.KindSale {
		return ticket.Record{}, r.journalProblem(fmt.Sprintf("entry %s: a %s record, where only sales are kept", m.ID, s.Kind))
	}
	s.Time = s.Time.UTC()
	return s, nil
}

// sameGen checks, after a long read, that the sale was not reset or
// replaced while it was read.
func (r *Store) sameGen(ctx context.Context, s snap) error {
	var gen string
	err := r.call(ctx, func(ctx context.Context) error {
		g, err := r.client.HGet(ctx, r.stateKey(), "gen").Result()
		if errors.Is(err, goredis.Nil) {
			err = nil
		}
		gen = g
		return err
	})
	if err != nil {
		return r.fail("read", err)
	}
	if gen != s.gen {
		return fmt.Errorf("%s was reset or replaced while it was read: nothing was changed; run it again", r.where())
	}
	return nil
}

// Sales yields the journal's committed sales in order, up to the state's
// version when it started, reading the stream in pages. A sale whose state
// is missing yields a *StateMissingError (or ErrNotFound) and nothing else.
func (r *Store) Sales() iter.Seq2[ticket.Record, error] {
	return func(yield func(ticket.Record, error) bool) {
		ctx := context.Background()
		s, err := r.snapshot(ctx)
		if err != nil {
			yield(ticket.Record{}, err)
			return
		}
		for msgs, err := range r.pages(ctx, r.client, s.last, "read", s.entries) {
			if err != nil {
				yield(ticket.Record{}, err)
				return
			}
			for _, m := range msgs {
				sale, err := r.saleFromEntry(m)
				if !yield(sale, err) || err != nil {
					return
				}
			}
		}
		if err := r.sameGen(ctx, s); err != nil {
			yield(ticket.Record{}, err)
		}
	}
}

// Verify checks, without changing anything, that the state and the
// journal balance, as Store.Verify does. It reads the state and the end of
// the journal as they were at one moment (see snapshot), then the journal
// up to there in pages, so that buyers go on meanwhile and no command
// holds the server for long. A key of the sale's with a TTL, which the
// server would delete, is a problem too.
func (r *Store) Verify(ctx context.Context) (store.Report, error) {
	var rep store.Report
	s, err := r.snapshot(ctx)
	if err != nil {
		return rep, err
	}
	rep.State = s.state
	var l ticket.Ledger
	var broken string
pages:
	for msgs, err := range r.pages(ctx, r.client, s.last, "read", s.entries) {
		if err != nil {
			return rep, err
		}
		for _, m := range msgs {
			sale, err := r.saleFromEntry(m)
			if err != nil {
				broken = err.Error()
				break pages
			}
			l.Add(sale)
		}
	}
	if err := r.sameGen(ctx, s); err != nil {
		return store.Report{}, err
	}
	if broken != "" {
		l.Problem("%s", broken)
	}
	l.Check(rep.State, "the journal's last sale", "the state")
	for _, k := range []string{r.stateKey(), r.journalKey(), r.requestsKey()} {
		var ttl time.Duration
		err := r.call(ctx, func(ctx context.Context) error {
			var err error
			ttl, err = r.client.PTTL(ctx, k).Result()
			return err
		})
		if err != nil {
			return rep, r.fail("read", err)
		}
		if ttl > 0 {
			l.Problem("the key %s has a TTL (%v): the server will delete it (remove the TTL with PERSIST)", k, ttl.Round(time.Millisecond))
		}
	}
	rep.Counts, rep.Problems = l.Counts(), l.Problems()
	return rep, nil
}

// Restore replaces the sale with state and sales, refusing with
// store.ErrExists when the sale exists, and a *StateMissingError when its
// journal holds sales without a state, unless mode is store.Replace. Then
// a journal that holds sales is renamed and archive names it. The sales are
// written in pages to a temporary stream (no command holds the server for
// long), which one MULTI/EXEC transaction then puts in place with the
// state; a failure deletes the temporary stream and leaves the sale as it
// was.
func (r *Store) Restore(ctx context.Context, state ticket.State, records []ticket.Record, mode store.Mode) (string, error) {
	force := mode == store.Replace
	var sales []ticket.Record
	for _, s := range records {
		switch s.Kind {
		case ticket.KindInit:
			// The state's total says it: a Redis journal holds sales only.
		case ticket.KindSale:
			sales = append(sales, s)
		default:
			return "", fmt.Errorf("%s: record #%d is of kind %q (a change made outside ticket), which a Redis journal cannot hold yet: nothing was copied", r.where(), s.Seq, s.Kind)
		}
	}
	if state.Total() > MaxCount {
		return "", fmt.Errorf("%s: %d tickets: a Redis sale holds at most %d: %w", r.where(), state.Total(), int64(MaxCount), ticket.ErrInvalid)
	}
	if err := r.checkServer(ctx, "copy"); err != nil {
		return "", err
	}
	exists := func(c goredis.Cmdable) error {
		n, err := c.Exists(ctx, r.stateKey()).Result()
		if err != nil {
			return r.fail("copy", err)
		}
		jl, err := c.XLen(ctx, r.journalKey()).Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			if isWrongType(err) {
				return r.wrongType(ctx, r.journalKey())
			}
			return r.fail("copy", err)
		}
		switch {
		case n > 0 && !force:
			return &existsError{r.where()}
		case n == 0 && jl > 0 && !force:
			return r.missing(jl)
		}
		return nil
	}
	if err := exists(r.client); err != nil {
		return "", err
	}
	tmp := r.journalKey() + ":copying:" + NewRequestID()
	cleanup := func() { _ = r.client.Del(context.Background(), tmp).Err() }
	total := int64(len(sales))
	for i := 0; i < len(sales); i += pageSize() {
		if err := ctx.Err(); errors.Is(err, context.Canceled) {
			cleanup()
			return "", fmt.Errorf("%s: copy interrupted; nothing was changed: %w", r.where(), err)
		}
		page := sales[i:min(i+pageSize(), len(sales))]
		err := r.call(ctx, func(ctx context.Context) error {
			_, err := r.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for _, s := range page {
					p.XAdd(ctx, &goredis.XAddArgs{Stream: tmp, Values: []any{
						"seq", s.Seq, "buyer", s.Buyer, "qty", s.Qty, "left", s.Left, "pid", s.PID,
						"time", s.Time.UTC().Format(time.RFC3339Nano), "request", "copy"}})
				}
				return nil
			})
			return err
		})
		if err != nil {
			cleanup()
			return "", r.fail("copy", err)
		}
		r.report("write", int64(i+len(page)), total)
	}
	var archive string
	err := r.call(ctx, func(ctx context.Context) error {
		return r.client.Watch(ctx, func(tx *goredis.Tx) error {
			if err := exists(tx); err != nil {
				return err
			}
			jl, err := tx.XLen(ctx, r.journalKey()).Result()
			if err != nil {
				return err
			}
			if jl > 0 {
				archive = r.journalKey() + ":" + files.Stamp(time.Now())
			}
			_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				if archive != "" {
					p.Rename(ctx, r.journalKey(), archive)
				}
				p.Del(ctx, r.journalKey(), r.requestsKey(), r.stateKey())
				if len(sales) > 0 {
					p.Rename(ctx, tmp, r.journalKey())
				}
				p.HSet(ctx, r.stateKey(), "total", state.Total(), "left", state.Left(), "version", state.Version(), "gen", NewRequestID())
				return nil
			})
			return err
		}, r.stateKey(), r.journalKey())
	})
	if err != nil {
		cleanup()
		archive = ""
	}
	switch {
	case err == nil:
		return archive, nil
	case errors.Is(err, store.ErrExists), errors.Is(err, ticket.ErrInvalid):
		return "", err
	case errors.Is(err, goredis.TxFailedErr):
		return "", fmt.Errorf("%s changed during the copy; nothing was written, try again", r.where())
	}
	return "", r.fail("copy", err)
}

// Repair rebuilds a sale's state from its journal when the state is
// missing (deleted, evicted, lost with a server that restarted from an
// older file) or damaged, as Store.Repair does for a ticket file: it
// checks the whole journal (numbers 1..n, each sale's "left" following
// from the one before), moves a damaged state hash aside to
// ticket:{NAME}:damaged:TIME (never deleting it) and writes the journal's
// last state, in one transaction that fails if a buyer wrote meanwhile.
// The sale's request ids stay valid: a retry still gets its original
// outcome. A sound state is left alone (store.Repaired.Sales is 0).
func (r *Store) Repair(ctx context.Context) (store.Repaired, error) {
	if err := r.checkServer(ctx, "repair"); err != nil {
		return store.Repaired{}, err
	}
	s, err := r.snapshot(ctx)
	var missing *StateMissingError
	switch {
	case err == nil:
		return store.Repaired{State: s.state}, nil
	case errors.As(err, &missing), errors.Is(err, ticket.ErrInvalid) && !errors.Is(err, store.ErrJournal):
	default:
		return store.Repaired{}, err
	}
	var rep store.Repaired
	err = r.call(ctx, func(ctx context.Context) error {
		return r.client.Watch(ctx, func(tx *goredis.Tx) error {
			typ, err := tx.Type(ctx, r.journalKey()).Result()
			if err != nil {
				return err
			}
			if typ != "stream" {
				return r.journalProblem(fmt.Sprintf("is a %s, not a stream: nothing to rebuild the state from", typ))
			}
			last, err := tx.XRevRangeN(ctx, r.journalKey(), "+", "-", 1).Result()
			if err != nil || len(last) == 0 {
				return err
			}
			n, err := tx.XLen(ctx, r.journalKey()).Result()
			if err != nil {
				return err
			}
			var l ticket.Ledger // the first sale fixes the total
			for msgs, err := range r.pages(ctx, tx, last[0].ID, "read", n) {
				if err != nil {
					return err
				}
				for _, m := range msgs {
					sale, err := r.saleFromEntry(m)
					if err != nil {
						return err
					}
					l.Add(sale)
				}
			}
			state, err := l.Books()
			if err != nil {
				return r.journalProblem("cannot rebuild the state from it: " + err.Error())
			}
			exists, err := tx.Exists(ctx, r.stateKey()).Result()
			if err != nil {
				return err
			}
			kept := ""
			if exists > 0 {
				kept = r.key("damaged:" + files.Stamp(time.Now()))
			}
			_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				if kept != "" {
					p.Rename(ctx, r.stateKey(), kept)
				}
				p.HSet(ctx, r.stateKey(), "total", state.Total(), "left", state.Left(), "version", state.Version(), "gen", NewRequestID())
				return nil
			})
			rep = store.Repaired{State: state, Sales: l.Counts().Sales, Kept: kept}
			return err
		}, r.stateKey(), r.journalKey())
	})
	switch {
	case err == nil:
		if rep.Sales == 0 {
			return rep, r.journalProblem("holds no sales to rebuild the state from")
		}
		return rep, nil
	case errors.Is(err, ticket.ErrInvalid):
		return store.Repaired{}, err
	case errors.Is(err, goredis.TxFailedErr):
		return store.Repaired{}, fmt.Errorf("%s changed during the repair; nothing was written, try again", r.where())
	}
	return store.Repaired{}, r.fail("repair", err)
}
