package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"github.com/ticketd/ticket/store"
)

// open opens the sale named by spec (a path, file:PATH or a redis:// URL).
func (c *cli) open(spec string, opts store.Options) (store.Backend, error) {
	b, err := store.OpenSpec(spec, opts)
	if err != nil {
		return nil, &usageError{fmt.Sprintf("--store: %v", err)}
	}
	return b, nil
}

// specChanged reports whether the sale was named on the command line.
func specChanged(fs *pflag.FlagSet) bool { return fs.Changed("file") || fs.Changed("store") }

// durability asks a Redis sale's server what it promises, warns on stderr
// when it can lose acknowledged sales, and, if report, notes it on stderr
// when it cannot. It returns the one-line description ("" for a file).
func (c *cli) durability(b store.Backend, report bool) string {
	r, ok := b.(*store.Redis)
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
