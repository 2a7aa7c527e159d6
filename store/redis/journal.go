package redis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strconv"
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
	gen     string        // the sale's generation: init and restore give it a new one
	last    string        // the journal's last entry id, "" if it is empty
	entries int64         // entries in the journal, up to last
	holds   []ticket.Hold // the open holds, soonest to expire first
	now     time.Time     // the server's clock when it was read: what decides a hold's lapse
	expiry  int64         // members of the expiry set (one per open hold, when the keys agree)
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
		var n, nexp *goredis.IntCmd
		var holds *goredis.MapStringStringCmd
		var now *goredis.TimeCmd
		read := func(p goredis.Pipeliner) error {
			before = p.HMGet(ctx, r.stateKey(), "total", "left", "version", "gen", "held", "limit")
			holds = p.HGetAll(ctx, r.key("holds"))
			nexp = p.ZCard(ctx, r.key("expiry"))
			now = p.Time(ctx)
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
			case isWrongType(holds.Err()):
				return s, r.wrongType(ctx, r.key("holds"))
			case isWrongType(nexp.Err()):
				return s, r.wrongType(ctx, r.key("expiry"))
			}
			return s, r.fail("read", err)
		}
		b, a := before.Val(), after.Val()
		if fmt.Sprint(b[2:4]) != fmt.Sprint(a) {
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
		s.now, s.expiry = now.Val().UTC(), nexp.Val()
		s.state, s.holds, err = r.parseBooked(b, holds.Val())
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

// saleFromEntry reads one stream entry as a record, as strictly as a line
// of a ticket file's journal (ticket.ParseFields): the entry's fields are
// a record's of ticket's own (a sale, or a booking record; never a change
// made outside ticket), and its request id.
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
	if s.Kind == ticket.KindOutside || s.Kind == ticket.KindRestock {
		return ticket.Record{}, r.journalProblem(fmt.Sprintf("entry %s: a %s record, where only ticket's own records are kept", m.ID, s.Kind))
	}
	s.Time, s.Expires = s.Time.UTC(), s.Expires.UTC()
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

// parseBooked reads the state hash's total, left, version, held and limit
// (vals, from HMGET), and the open holds of the holds hash, soonest to
// expire first.
func (r *Store) parseBooked(vals []any, holds map[string]string) (ticket.State, []ticket.Hold, error) {
	st, err := r.parseState(vals)
	if err != nil {
		return st, nil, err
	}
	var n [2]int64 // held, limit
	for i, v := range vals[4:6] {
		if v == nil {
			continue
		}
		s, _ := v.(string)
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil || x < 0 {
			return ticket.State{}, nil, fmt.Errorf("%s: %w", r.where(), &ticket.FormatError{Problem: fmt.Sprintf("%q of the state hash is %v, not a whole number", [...]string{"held", "limit"}[i], v)})
		}
		n[i] = x
	}
	hs := make([]ticket.Hold, 0, len(holds))
	var sum int64
	for id, v := range holds {
		h, ok := parseHoldValue(id, v)
		if !ok {
			return ticket.State{}, nil, fmt.Errorf("%s: %w", r.where(), &ticket.FormatError{Problem: fmt.Sprintf("hold %q of %s is %q, not qty, expiry and buyer", id, r.key("holds"), v)})
		}
		hs = append(hs, h)
		sum += h.Qty
	}
	slices.SortFunc(hs, func(a, b ticket.Hold) int {
		if c := a.Expires.Compare(b.Expires); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	booked, err := ticket.Booked(st.Version(), st.Left(), n[0], st.Total())
	if err == nil && sum != n[0] {
		err = fmt.Errorf("%d held is not the %d tickets of the open holds", n[0], sum)
	}
	if err != nil {
		return ticket.State{}, nil, fmt.Errorf("%s: %w", r.where(), &ticket.FormatError{Problem: fmt.Sprintf("the state hash and the open holds of %s do not hold together: %v", r.key("holds"), err)})
	}
	booked, err = booked.WithLimit(n[1], 0)
	return booked, hs, err
}

// expiredHolds returns the holds of hs (soonest first) that expired by now.
func expiredHolds(hs []ticket.Hold, now time.Time) []ticket.Hold {
	i := 0
	for i < len(hs) && !hs[i].Expires.After(now) {
		i++
	}
	return hs[:i]
}

// parseHoldValue reads one open hold of the holds hash: qty, expiry (RFC
// 3339), expiry in ms and buyer, joined by tabs.
func parseHoldValue(id, v string) (ticket.Hold, bool) {
	f := strings.SplitN(v, "\t", 4)
	if len(f) != 4 {
		return ticket.Hold{}, false
	}
	q, err := strconv.ParseInt(f[0], 10, 64)
	exp, terr := time.Parse(time.RFC3339Nano, f[1])
	if _, herr := ticket.HoldSeq(id); err != nil || terr != nil || herr != nil || q < 1 || ticket.CheckBuyer(f[3]) != nil {
		return ticket.Hold{}, false
	}
	return ticket.Hold{ID: id, Buyer: f[3], Qty: q, Expires: exp.UTC()}, true
}

// holdValue is a hold as the holds hash keeps it (see parseHoldValue).
func holdValue(h ticket.Hold) string {
	return fmt.Sprintf("%d\t%s\t%d\t%s", h.Qty, h.Expires.UTC().Format(time.RFC3339Nano), expiryMS(h.Expires), h.Buyer)
}

// expiryMS is a hold's expiry as the expiry set scores it: in ms, rounded
// up, so that a hold never lapses before its time.
func expiryMS(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.After(time.UnixMilli(ms)) {
		ms++
	}
	return ms
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
	var l ticket.Ledger
	if s.expiry != int64(len(s.holds)) {
		l.Problem("the expiry set %s has %d holds, the holds hash %s %d", r.key("expiry"), s.expiry, r.key("holds"), len(s.holds))
	}
	// A hold that expired by the server's clock counts as released, as
	// the next script will record it.
	expired := expiredHolds(s.holds, s.now)
	state, lapsed := s.state.Lapse(expired, s.now)
	rep.State = state
	var broken string
	var lost, wrong []reqEntry // request ids the requests hash lacks, or holds for another buy
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
		miss, bad, err := r.pageRequests(ctx, msgs, s.state.Total())
		if err != nil {
			return rep, err
		}
		lost, wrong = append(lost, miss...), append(wrong, bad...)
	}
	if err := r.sameGen(ctx, s); err != nil {
		return store.Report{}, err
	}
	if broken != "" {
		l.Problem("%s", broken)
	}
	var pending []string
	for _, rec := range lapsed {
		pending = append(pending, fmt.Sprintf("#%d: %s (expired; the next script that changes the sale records it)", rec.Seq, rec.Describe()))
		l.Add(rec)
	}
	rep.Pending = strings.Join(pending, "; ")
	l.Check(rep.State, "the journal's last record", "the state")
	if broken == "" {
		if err := r.checkBooking(ctx, &l, s.holds[len(expired):], lapsed, state.Limit() != 0); err != nil {
			return rep, err
		}
	}
	if len(lost) > 0 {
		whole := ""
		if n, err := r.client.Exists(ctx, r.requestsKey()).Result(); err == nil && n == 0 {
			whole = " (the hash is gone)"
		}
		l.Problem("the requests hash %s lacks the request ids of %d %s%s, first %s of sale #%s: a retry of one of them would buy again (the journal holds them: a repair restores them)",
			r.requestsKey(), len(lost), map[bool]string{true: "sale", false: "sales"}[len(lost) == 1], whole, lost[0].id, lost[0].seq)
	}
	for _, w := range wrong {
		l.Problem("the requests hash %s holds request id %s of sale #%s for another buy: %q", r.requestsKey(), w.id, w.seq, w.value)
	}
	for _, k := range r.scriptKeys() {
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
	rep.Counts, rep.Booked, rep.Problems = l.Counts(), l.Bookings(), l.Problems()
	return rep, nil
}

// checkBooking matches the open holds (open, less those lapsing now) and,
// with a limit, the holdings hash (less the lapses) with what the
// journal's records leave (the ledger l, lapses included).
func (r *Store) checkBooking(ctx context.Context, l *ticket.Ledger, open []ticket.Hold, lapsed []ticket.Record, limit bool) error {
	want := l.OpenHolds()
	byID := make(map[string]ticket.Hold, len(want))
	for _, h := range want {
		byID[h.ID] = h
	}
	for _, h := range open {
		w, ok := byID[h.ID]
		if !ok || w.Buyer != h.Buyer || w.Qty != h.Qty || !w.Expires.Equal(h.Expires) {
			l.Problem("the holds hash %s has hold %s (%s's %d), which the journal does not leave open as that", r.key("holds"), h.ID, h.Buyer, h.Qty)
		}
		delete(byID, h.ID)
	}
	for _, h := range want {
		if _, ok := byID[h.ID]; ok {
			l.Problem("the journal leaves hold %s (%s's %d) open, which the holds hash %s lacks", h.ID, h.Buyer, h.Qty, r.key("holds"))
		}
	}
	if !limit {
		return nil
	}
	var all map[string]string
	err := r.call(ctx, func(ctx context.Context) error {
		var err error
		all, err = r.client.HGetAll(ctx, r.key("holdings")).Result()
		return err
	})
	if err != nil {
		if isWrongType(err) {
			return r.wrongType(ctx, r.key("holdings"))
		}
		return r.fail("read holdings", err)
	}
	have := make(map[string]int64, len(all))
	for b, v := range all {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			l.Problem("the holdings hash %s holds %q for %s, not a whole number", r.key("holdings"), v, b)
		}
		have[b] = n
	}
	for _, rec := range lapsed { // counted by the hash until a script records them
		if b, d := rec.Holding(); d != 0 {
			have[b] += d
		}
	}
	holders := l.Holders()
	for _, b := range slices.Sorted(maps.Keys(have)) {
		if have[b] != holders[b] && (have[b] != 0 || holders[b] != 0) {
			l.Problem("the holdings hash %s says %s has %d, the journal %d", r.key("holdings"), b, have[b], holders[b])
		}
	}
	for _, b := range slices.Sorted(maps.Keys(holders)) {
		if _, ok := have[b]; !ok && holders[b] != 0 {
			l.Problem("the holdings hash %s lacks %s, who has %d by the journal", r.key("holdings"), b, holders[b])
		}
	}
	return nil
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
	var sales []ticket.Record // the records the journal gets
	aux := newAuxKeys(r, state)
	var books ticket.Ledger // the open holds and holdings the records leave
	for _, s := range records {
		books.Add(s)
		switch s.Kind {
		case ticket.KindInit:
			// The state's total says it; a sale with a limit keeps its
			// init record, which carries the limit, as init --limit does.
			if state.Limit() != 0 && len(sales) == 0 {
				sales = append(sales, s)
			}
			continue
		case ticket.KindOutside, ticket.KindRestock:
			return "", fmt.Errorf("%s: record #%d is of kind %q (a change made outside ticket), nothing was copied: %w", r.where(), s.Seq, s.Kind, ErrForeignRecord)
		}
		sales = append(sales, s)
		aux.add(s)
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
	aux.books(books.OpenHolds(), books.Holders())
	cleanup := func() { _ = r.client.Del(context.Background(), append([]string{tmp}, aux.tmpKeys()...)...).Err() }
	if err := aux.write(ctx); err != nil {
		cleanup()
		return "", r.fail("copy", err)
	}
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
					p.XAdd(ctx, &goredis.XAddArgs{Stream: tmp, Values: entryFields(s)})
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
				p.Del(ctx, append([]string{r.journalKey(), r.requestsKey(), r.stateKey()}, r.bookingKeys()...)...)
				if len(sales) > 0 {
					p.Rename(ctx, tmp, r.journalKey())
				}
				aux.rename(ctx, p)
				p.HSet(ctx, r.stateKey(), "total", state.Total(), "left", state.Left(), "version", state.Version(), "gen", NewRequestID())
				if state.Held() != 0 {
					p.HSet(ctx, r.stateKey(), "held", state.Held())
				}
				if state.Limit() != 0 {
					p.HSet(ctx, r.stateKey(), "limit", state.Limit())
				}
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

// entryFields are the fields of a record's journal entry: the members its
// kind has in a ticket file's journal line (a sale's without "total", as
// the buy script writes it), and the request id "copy".
func entryFields(s ticket.Record) []any {
	var line map[string]any
	d := json.NewDecoder(bytes.NewReader(s.AppendLine(nil)))
	d.UseNumber()
	_ = d.Decode(&line) // AppendLine writes one JSON object
	f := make([]any, 0, 2*len(line)+2)
	for _, name := range recordNames {
		v, ok := line[name]
		if !ok || (name == "total" && s.Kind == ticket.KindSale) {
			continue
		}
		f = append(f, name, fmt.Sprint(v))
	}
	return append(f, "request", "copy")
}

// auxKeys are the booking keys of a sale Restore writes (see bookCommon),
// filled from its state and records, and written to temporary keys in
// pages before one transaction renames them into place.
type auxKeys struct {
	r      *Store
	suffix string
	hashes [5]map[string]string // holds, (expiry apart), holdings, closed, returned
	expiry []goredis.Z
	limit  bool
	hold   map[string]int64 // holdings
	ret    map[string]int64 // returned
}

func newAuxKeys(r *Store, state ticket.State) *auxKeys {
	a := &auxKeys{r: r, suffix: ":copying:" + NewRequestID(), limit: state.Limit() != 0, hold: map[string]int64{}, ret: map[string]int64{}}
	for i := range a.hashes {
		a.hashes[i] = map[string]string{}
	}
	return a
}

// books sets the open holds and, with a limit, each buyer's holding, as
// the journal's records leave them.
func (a *auxKeys) books(open []ticket.Hold, holders map[string]int64) {
	for _, h := range open {
		a.hashes[0][h.ID] = holdValue(h)
		a.expiry = append(a.expiry, goredis.Z{Score: float64(expiryMS(h.Expires)), Member: h.ID})
	}
	if a.limit {
		maps.Copy(a.hold, holders)
	}
}

// add counts one record of the journal: the closing record of a closed
// hold, a return.
func (a *auxKeys) add(s ticket.Record) {
	switch s.Kind {
	case ticket.KindConfirm, ticket.KindRelease:
		a.hashes[3][s.Hold] = recordLine(s)
	case ticket.KindReturn:
		a.ret[strconv.FormatInt(s.Sale, 10)] += s.Qty
	}
}

func (a *auxKeys) tmpKeys() []string {
	var keys []string
	for _, k := range a.r.bookingKeys() {
		keys = append(keys, k+a.suffix)
	}
	return keys
}

// write writes the keys, in pages, to their temporary names.
func (a *auxKeys) write(ctx context.Context) error {
	for b, n := range a.hold {
		if n > 0 {
			a.hashes[2][b] = strconv.FormatInt(n, 10)
		}
	}
	for s, n := range a.ret {
		a.hashes[4][s] = strconv.FormatInt(n, 10)
	}
	tmp := a.tmpKeys()
	var cmds []func(p goredis.Pipeliner)
	for i, h := range a.hashes {
		for k, v := range h {
			cmds = append(cmds, func(p goredis.Pipeliner) { p.HSet(ctx, tmp[i], k, v) })
		}
	}
	for _, z := range a.expiry {
		cmds = append(cmds, func(p goredis.Pipeliner) { p.ZAdd(ctx, tmp[1], z) })
	}
	for i := 0; i < len(cmds); i += pageSize() {
		page := cmds[i:min(i+pageSize(), len(cmds))]
		err := a.r.call(ctx, func(ctx context.Context) error {
			_, err := a.r.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for _, c := range page {
					c(p)
				}
				return nil
			})
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// rename puts the keys written in place, in the transaction p.
func (a *auxKeys) rename(ctx context.Context, p goredis.Pipeliner) {
	tmp, keys := a.tmpKeys(), a.r.bookingKeys()
	for i := range keys {
		if (i == 1 && len(a.expiry) > 0) || (i != 1 && len(a.hashes[i]) > 0) {
			p.Rename(ctx, tmp[i], keys[i])
		}
	}
}

// recordLine is a record as the scripts give it and the closed hash keeps
// it (see bookCommon and parseRecordLine).
func recordLine(s ticket.Record) string {
	f := make([]string, 0, len(recordNames))
	num := func(n int64) string { return strconv.FormatInt(n, 10) }
	opt := func(n int64) string {
		if n == 0 {
			return ""
		}
		return num(n)
	}
	exp := ""
	if !s.Expires.IsZero() {
		exp = s.Expires.UTC().Format(time.RFC3339Nano)
	}
	pid := ""
	if s.PID != 0 {
		pid = strconv.Itoa(s.PID)
	}
	f = append(f, num(s.Seq), string(s.Kind), s.Hold, opt(s.Sale), s.Buyer, num(s.Qty), s.Reason, num(s.Left), num(s.Held), num(s.Total), opt(s.Limit), exp, pid, s.Time.UTC().Format(time.RFC3339Nano))
	return strings.Join(f, "\t")
}

// Repair rebuilds a sale's state from its journal when the state is
// missing (deleted, evicted, lost with a server that restarted from an
// older file) or damaged, as Store.Repair does for a ticket file: it
// checks the whole journal (numbers 1..n, each sale's "left" following
// from the one before), moves a damaged state hash aside to
// ticket:{NAME}:damaged:TIME (never deleting it) and writes the journal's
// last state, in one transaction that fails if a buyer wrote meanwhile. A
// state behind its journal (a buy whose state write the server refused
// after its XADD) is rebuilt the same way; a state ahead of its journal
// (sales missing from it) is refused and left as it is, since rebuilding
// would sell their tickets again. It restores the request ids the
// requests hash lost (deleted, or never written) from the journal, and
// removes a TTL from the sale's keys, and records as lapsed the holds
// that expired (as the next script would). The rebuilt state has the
// journal's held tickets and limit; the open holds, holdings, closed holds
// and returns are kept by their own keys, which it does not rebuild. The
// sale's request ids stay valid:
// a retry still gets its original outcome. A sound sale is left alone
// (store.Repaired.Sales is 0, Note empty).
//
// Repair decides on what Verify reports, and checks its work with Verify:
// it never calls a sale sound that Verify finds unbalanced; what it cannot
// mend is returned as an error naming Verify's problems, wrapping
// store.ErrJournal and ticket.ErrInvalid.
func (r *Store) Repair(ctx context.Context) (store.Repaired, error) {
	if err := r.checkServer(ctx, "repair"); err != nil {
		return store.Repaired{}, err
	}
	if err := r.settle(ctx); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.As(err, new(*StateMissingError)) && !errors.Is(err, ticket.ErrInvalid) {
		return store.Repaired{}, err
	}
	v, err := r.Verify(ctx)
	var missing *StateMissingError
	switch {
	case err == nil && v.Balanced():
		return store.Repaired{State: v.State}, nil
	case err == nil, errors.As(err, &missing), errors.Is(err, ticket.ErrInvalid) && !errors.Is(err, store.ErrJournal):
	default:
		return store.Repaired{}, err
	}
	rep, err := r.rebuildState(ctx)
	if err != nil {
		return store.Repaired{}, err
	}
	var notes []string
	n, err := r.restoreRequests(ctx)
	if err != nil {
		return rep, err
	}
	if n > 0 {
		notes = append(notes, fmt.Sprintf("restored %d request %s from the journal", n, map[bool]string{true: "id", false: "ids"}[n == 1]))
	}
	for _, k := range []string{r.stateKey(), r.journalKey(), r.requestsKey()} {
		var done bool
		if err := r.call(ctx, func(ctx context.Context) error {
			var err error
			done, err = r.client.Persist(ctx, k).Result()
			return err
		}); err != nil {
			return rep, r.fail("repair", err)
		}
		if done {
			notes = append(notes, "removed the TTL of "+k)
		}
	}
	if err := r.settle(ctx); err != nil { // the lapses the state rebuilt shows
		return rep, err
	}
	rep.Note = strings.Join(notes, "; ")
	after, err := r.Verify(ctx)
	if err != nil {
		return rep, err
	}
	rep.State = after.State
	if !after.Balanced() {
		return rep, r.journalProblem(fmt.Sprintf("the books still do not balance, left as they are: %s", strings.Join(after.Problems, "; ")))
	}
	return rep, nil
}

// restoreRequests writes back, from the journal, the request ids the
// requests hash should hold and does not (see pageRequests), each only if
// it is still missing and the buys have not forgotten it meanwhile (one
// script per page, atomic). It returns how many it wrote.
func (r *Store) restoreRequests(ctx context.Context) (int64, error) {
	s, err := r.snapshot(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	for msgs, err := range r.pages(ctx, r.client, s.last, "read", s.entries) {
		if err != nil {
			return n, err
		}
		miss, _, err := r.pageRequests(ctx, msgs, s.state.Total())
		if err != nil {
			return n, err
		}
		if len(miss) == 0 {
			continue
		}
		args := make([]any, 0, 3*len(miss))
		for _, m := range miss {
			args = append(args, m.entry, m.id, m.value)
		}
		var wrote int64
		err = r.call(ctx, func(ctx context.Context) error {
			var err error
			wrote, err = restoreScript().Run(ctx, r.client, []string{r.requestsKey()}, args...).Int64()
			return err
		})
		if err != nil {
			return n, r.fail("repair", err)
		}
		n += wrote
	}
	return n, r.sameGen(ctx, s)
}

// rebuildState rebuilds the state from the journal when it is missing,
// damaged or behind the journal (see Repair); a state that matches the
// journal is left alone (Sales 0).
func (r *Store) rebuildState(ctx context.Context) (store.Repaired, error) {
	var rep store.Repaired
	err := r.call(ctx, func(ctx context.Context) error {
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
				vals, err := tx.HMGet(ctx, r.stateKey(), "total", "left", "version").Result()
				if err != nil {
					return err
				}
				if st, perr := r.parseState(vals); perr == nil {
					switch {
					case sameState(st, state):
						rep = store.Repaired{State: st}
						return nil
					case st.Total() != state.Total() || st.Version() > state.Version() || st.Left() < state.Left():
						return r.journalProblem(fmt.Sprintf("its last sale (#%d, %d left of %d) is not ahead of the state (version %d, %d left of %d): rebuilding the state from it could sell tickets again; left as it is",
							state.Version(), state.Left(), state.Total(), st.Version(), st.Left(), st.Total()))
					}
				}
				kept = r.key("damaged:" + files.Stamp(time.Now()))
			}
			_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				if kept != "" {
					p.Rename(ctx, r.stateKey(), kept)
				}
				p.HSet(ctx, r.stateKey(), "total", state.Total(), "left", state.Left(), "version", state.Version(), "gen", NewRequestID(), "held", state.Held())
				if state.Limit() != 0 {
					p.HSet(ctx, r.stateKey(), "limit", state.Limit())
				}
				return nil
			})
			rep = store.Repaired{State: state, Sales: l.Counts().Sales, Kept: kept}
			return err
		}, r.stateKey(), r.journalKey())
	})
	switch {
	case err == nil:
		if rep.Sales == 0 && rep.State.Total() == 0 && rep.State.Version() == 0 {
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

// reqEntry is a journal entry's request id, as the requests hash should
// hold it.
type reqEntry struct {
	entry string // the stream entry's id
	seq   string // the sale's number
	id    string // the request id
	value string // what the hash holds for it, or should
}

// pageRequests checks that the requests hash answers, as the buy that
// made it, for each sale of msgs made by a buy (a copied sale has the
// request id "copy", and none in the hash), except those the buys have
// forgotten: at or before the hash's cursor (">"), read after the ids, so
// that an id forgotten meanwhile is never taken for a lost one. It
// returns the ids missing, with the value that answers them (total is the
// sale's), and those held for another buy.
func (r *Store) pageRequests(ctx context.Context, msgs []goredis.XMessage, total int64) (missing, wrong []reqEntry, err error) {
	var want []reqEntry
	for _, m := range msgs {
		id, _ := m.Values["request"].(string)
		if _, booking := m.Values["kind"]; id == "" || id == "copy" || booking {
			continue // a booking record's request is answered as it asked (see bookSource), and not checked here
		}
		f := func(k string) string { s, _ := m.Values[k].(string); return s }
		want = append(want, reqEntry{entry: m.ID, seq: f("seq"), id: id,
			value: fmt.Sprintf("%s\n%s\nok %s %s %d %s %s", f("qty"), f("buyer"), f("seq"), f("left"), total, f("seq"), f("time"))})
	}
	if len(want) == 0 {
		return nil, nil, nil
	}
	ids := make([]string, len(want))
	for i, w := range want {
		ids[i] = w.id
	}
	var got *goredis.SliceCmd
	var cursor *goredis.StringCmd
	err = r.call(ctx, func(ctx context.Context) error {
		_, err := r.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			got = p.HMGet(ctx, r.requestsKey(), ids...)
			cursor = p.HGet(ctx, r.requestsKey(), ">")
			return nil
		})
		if errors.Is(err, goredis.Nil) {
			err = nil
		}
		return err
	})
	if err != nil {
		if isWrongType(err) {
			return nil, nil, r.wrongType(ctx, r.requestsKey())
		}
		return nil, nil, r.fail("read requests", err)
	}
	forgotten := cursor.Val()
	for i, v := range got.Val() {
		w := want[i]
		s, ok := v.(string)
		switch {
		case !ok:
			if forgotten == "" || streamAfter(w.entry, forgotten) {
				missing = append(missing, w)
			}
		case !strings.HasPrefix(s, w.value[:strings.Index(w.value, "ok ")+3]+w.seq+" "):
			wrong = append(wrong, reqEntry{entry: w.entry, seq: w.seq, id: w.id, value: s})
		}
	}
	return missing, wrong, nil
}

// streamAfter reports whether stream entry id a comes after b.
func streamAfter(a, b string) bool {
	am, as := splitStreamID(a)
	bm, bs := splitStreamID(b)
	return am > bm || am == bm && as > bs
}

func splitStreamID(id string) (ms, seq uint64) {
	m, s, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(m, 10, 64)
	seq, _ = strconv.ParseUint(s, 10, 64)
	return ms, seq
}

func sameState(a, b ticket.State) bool {
	return a.Total() == b.Total() && a.Left() == b.Left() && a.Version() == b.Version()
}
