package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redisspec"
)

// OpenRedis opens the Redis sale at spec, a redis:// or rediss:// URL. The
// ticket-redis command sets it (see package cliredis); in ticket, which
// buys from files and links no Redis client, it is nil, and ticket runs
// ticket-redis for a command line that names a Redis sale.
var OpenRedis func(spec string) (RedisSale, error)

// RedisSale is what the command line asks of a Redis sale beyond
// store.Backend.
type RedisSale interface {
	store.Backend
	// Redacted is the sale's URL without its password, to print.
	Redacted() string
	// HasPassword reports whether the URL carries one (see redisspec).
	HasPassword() bool
	// Addr and Name are the server's address and the sale's name in it.
	Addr() string
	Name() string
	// OnProgress has long reads and writes of the journal call f.
	OnProgress(f func(what string, done, total int64))
	// Durability says what the server promises of an acknowledged sale,
	// and whether it can lose one.
	Durability(ctx context.Context) (desc string, canLose bool, err error)
	// BuyRequest is Buy with the request id that makes a retry safe.
	BuyRequest(ctx context.Context, id, buyer string, qty int64) (store.Receipt, error)
	// UnsafeBuy buys as a client without the sale's script would, for the
	// demonstration of what the lock prevents.
	UnsafeBuy(ctx context.Context, buyer string, qty int64) (store.Receipt, error)
}

// open opens the sale named by spec: a redis:// or rediss:// URL names a
// sale in Redis (see OpenRedis), "file:PATH" or a plain PATH a ticket
// file (opts apply to it). Its errors come with hints (see hint).
func (c *cli) open(spec string, opts store.Options) (store.Backend, error) {
	var b store.Backend
	if redisspec.IsURL(spec) {
		if OpenRedis == nil {
			return nil, fmt.Errorf("%s: a Redis sale needs the ticket-redis command, which this program runs when it finds one on the command line or in $TICKET_STORE (install both with go install ./cmd/...)", redisspec.RedactURL(spec))
		}
		r, err := OpenRedis(spec)
		if err != nil {
			return nil, &usageError{fmt.Sprintf("--store: %v", err)}
		}
		b = r
	} else {
		b = store.Open(strings.TrimPrefix(spec, "file:"), opts)
	}
	return &hinted{Backend: b, c: c}, nil
}

// printable returns spec as ticket prints it: a Redis URL without its
// password (see redisspec.RedactURL), anything else as it is.
func printable(spec string) string {
	if redisspec.IsURL(spec) {
		return redisspec.RedactURL(spec)
	}
	return spec
}

// specChanged reports whether the sale was named on the command line.
func specChanged(fs *pflag.FlagSet) bool { return fs.Changed("file") || fs.Changed("store") }

// redisOf returns the Redis sale b is, if it is one.
func redisOf(b store.Backend) (RedisSale, bool) {
	if h, ok := b.(*hinted); ok {
		b = h.Backend
	}
	r, ok := b.(RedisSale)
	return r, ok
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
	desc, canLose, err := r.Durability(ctx)
	if err != nil {
		fmt.Fprintf(c.stderr, "ticket %s: warning: could not ask the server about persistence: %v\n", c.name, err)
		return "unknown"
	}
	switch {
	case canLose:
		fmt.Fprintf(c.stderr, "ticket %s: warning: redis %s can lose acknowledged sales: %s\n", c.name, r.Addr(), desc)
	case report:
		fmt.Fprintf(c.stderr, "ticket %s: redis %s: %s\n", c.name, r.Addr(), desc)
	}
	return desc
}

// NamesRedis reports whether the command line args, or the default sale
// in the environment ($TICKET_STORE, else $TICKET_FILE), name a Redis
// sale: a redis:// or rediss:// URL as an argument or a flag's value. It
// looks at the words alone, before any parsing: a word that only looks
// like one (a buyer named redis://x) makes ticket run ticket-redis, which
// runs the same command line.
func NamesRedis(args []string, getenv func(string) string) bool {
	def := getenv("TICKET_STORE")
	if def == "" {
		def = getenv("TICKET_FILE")
	}
	if redisspec.IsURL(def) {
		return true
	}
	for _, a := range args {
		if _, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
			a = v
		}
		if redisspec.IsURL(a) {
			return true
		}
	}
	return false
}
