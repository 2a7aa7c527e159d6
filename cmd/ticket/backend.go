package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis"
)

// open opens the sale named by spec: a redis:// or rediss:// URL names a
// sale in Redis (see redis.Open), "file:PATH" or a plain PATH a ticket
// file (opts apply to it). Its errors come with hints (see hint).
func (c *cli) open(spec string, opts store.Options) (store.Backend, error) {
	var b store.Backend
	if redis.IsURL(spec) {
		r, err := redis.Open(spec)
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
// password (see redis.RedactURL), anything else as it is.
func printable(spec string) string {
	if redis.IsURL(spec) {
		return redis.RedactURL(spec)
	}
	return spec
}

// specChanged reports whether the sale was named on the command line.
func specChanged(fs *pflag.FlagSet) bool { return fs.Changed("file") || fs.Changed("store") }

// redisOf returns the Redis sale b is, if it is one.
func redisOf(b store.Backend) (*redis.Store, bool) {
	if h, ok := b.(*hinted); ok {
		b = h.Backend
	}
	r, ok := b.(*redis.Store)
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
