package main

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// open opens the sale named by spec (a path, file:PATH or a redis:// URL).
// A Redis sale comes back as a redisSale, whose errors say what to run next.
func (c *cli) open(spec string, opts store.Options) (store.Backend, error) {
	b, err := store.OpenSpec(spec, opts)
	if err != nil {
		return nil, &usageError{fmt.Sprintf("--store: %v", err)}
	}
	if r, ok := b.(*store.Redis); ok {
		return redisSale{r}, nil
	}
	return b, nil
}

// specChanged reports whether the sale was named on the command line.
func specChanged(fs *pflag.FlagSet) bool { return fs.Changed("file") || fs.Changed("store") }

// redisSale is a Redis sale as the command line uses it: the errors a
// user can act on end with the command to run next.
type redisSale struct{ *store.Redis }

// Read is Redis.Read with hints.
func (s redisSale) Read() (ticket.State, error) {
	st, err := s.Redis.Read()
	return st, s.hint(err)
}

// Buy is Redis.Buy with hints.
func (s redisSale) Buy(ctx context.Context, buyer string, qty int64) (store.Receipt, error) {
	rc, err := s.Redis.Buy(ctx, buyer, qty)
	return rc, s.hint(err)
}

// Init is Redis.Init with hints.
func (s redisSale) Init(ctx context.Context, n int64, force bool) (ticket.State, string, error) {
	st, archive, err := s.Redis.Init(ctx, n, force)
	return st, archive, s.hint(err)
}

// Verify is Redis.Verify with hints.
func (s redisSale) Verify(ctx context.Context) (store.Report, error) {
	r, err := s.Redis.Verify(ctx)
	return r, s.hint(err)
}

// Sales is Redis.Sales with hints.
func (s redisSale) Sales() iter.Seq2[ticket.Sale, error] {
	return func(yield func(ticket.Sale, error) bool) {
		for sale, err := range s.Redis.Sales() {
			if !yield(sale, s.hint(err)) {
				return
			}
		}
	}
}

// Restore is Redis.Restore with hints.
func (s redisSale) Restore(ctx context.Context, state ticket.State, sales []ticket.Sale, force bool) (string, error) {
	archive, err := s.Redis.Restore(ctx, state, sales, force)
	return archive, s.hint(err)
}

// Repair is Redis.Repair with hints.
func (s redisSale) Repair(ctx context.Context) (store.Repaired, error) {
	r, err := s.Redis.Repair(ctx)
	return r, s.hint(err)
}

// hinted is an error with the command that a user should run next.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() + "; " + h.hint }
func (h *hinted) Unwrap() error { return h.err }

// hint adds to err what to run next, for the errors a user can act on.
func (s redisSale) hint(err error) error {
	var unknown *store.OutcomeUnknownError
	var mismatch *store.RequestMismatchError
	var missing *store.StateMissingError
	at := "--store " + shellQuote(s.Redacted())
	switch {
	case err == nil:
		return nil
	case errors.As(err, &unknown):
		return &hinted{err, "to learn it, run the same buy again (it never buys twice): " + s.retryCommand(unknown.Buyer, strconv.FormatInt(unknown.Qty, 10), unknown.RequestID)}
	case errors.As(err, &mismatch):
		return &hinted{err, "to learn that buy's outcome, run: " + s.retryCommand(mismatch.Buyer, mismatch.Qty, mismatch.ID)}
	case errors.As(err, &missing):
		return &hinted{err, "rebuild it with: ticket repair " + at + " (init --force would start the sale again and sell its tickets twice)"}
	case errors.Is(err, store.ErrNotFound):
		return &hinted{err, "create it with: ticket init --count N " + at + "; if it existed, the server has lost it (a restart without persistence, a failover to an empty replica): restore it with ticket copy from a copy of it instead of starting it again"}
	}
	return err
}

// retryCommand is the whole command that repeats a buy.
func (s redisSale) retryCommand(buyer, qty, id string) string {
	return fmt.Sprintf("ticket buy --store %s --buyer %s --qty %s --request-id %s", shellQuote(s.Redacted()), shellQuote(buyer), qty, id)
}

// shellQuote quotes s for a POSIX shell where it needs it.
func shellQuote(s string) string {
	safe := s != ""
	for _, c := range s {
		safe = safe && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._:/-@=,+%", c))
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// redisOf returns the Redis sale b is, if it is one.
func redisOf(b store.Backend) (*store.Redis, bool) {
	switch r := b.(type) {
	case redisSale:
		return r.Redis, true
	case *store.Redis:
		return r, true
	}
	return nil, false
}

// showProgress makes a Redis sale's long reads and writes of its journal
// say on stderr how far they are, every 100 000 entries.
func (c *cli) showProgress(b store.Backend) {
	r, ok := redisOf(b)
	if !ok {
		return
	}
	const every = 100000
	next, last := map[string]int64{}, map[string]int64{}
	r.OnProgress(func(what string, done, total int64) {
		if total < every {
			return
		}
		if done < last[what] { // a new pass over the journal
			next[what] = 0
		}
		last[what] = done
		if done >= next[what] || done == total {
			verb := map[string]string{"read": "read", "write": "wrote"}[what]
			fmt.Fprintf(c.stderr, "ticket %s: redis %s sale %q: %s %d of %d journal entries\n", c.name, r.Addr(), r.Name(), verb, done, total)
			next[what] = (done/every + 1) * every
		}
	})
}

// durability asks a Redis sale's server what it promises, warns on stderr
// when it can lose acknowledged sales, and, if report, notes it on stderr
// when it cannot. It returns the one-line description ("" for a file).
func (c *cli) durability(b store.Backend, report bool) string {
	r, ok := redisOf(b)
	if !ok {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := r.Durability(ctx)
	if err != nil {
		fmt.Fprintf(c.stderr, "ticket %s: warning: could not ask the server about persistence: %v\n", c.name, err)
		return "unknown"
	}
	switch {
	case d.CanLose():
		fmt.Fprintf(c.stderr, "ticket %s: warning: redis %s can lose acknowledged sales: %s\n", c.name, r.Addr(), d)
	case report:
		fmt.Fprintf(c.stderr, "ticket %s: redis %s: %s\n", c.name, r.Addr(), d)
	}
	return d.String()
}
