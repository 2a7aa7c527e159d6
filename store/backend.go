package store

import (
	"context"
	"iter"
	"strings"

	"github.com/ticketd/ticket/ticket"
)

// Backend is one ticket sale, wherever it is kept: a ticket file (Store)
// or a Redis server (Redis). Every method may be called from many
// processes at once; within one process, from many goroutines.
type Backend interface {
	// Read returns the current state without waiting for any lock.
	Read() (ticket.State, error)
	// Buy sells qty tickets to buyer if at least qty are left, all or nothing.
	Buy(ctx context.Context, buyer string, qty int64) (Receipt, error)
	// Init creates the sale with n tickets (force: reset an existing one,
	// keeping its old journal under the returned archive name).
	Init(ctx context.Context, n int64, force bool) (state ticket.State, archive string, err error)
	// Verify checks that the state and the journal balance.
	Verify(ctx context.Context) (Report, error)
	// Sales yields the journal's sales in order.
	Sales() iter.Seq2[ticket.Sale, error]
	// Restore replaces the sale with state and its journal sales, as
	// ticket copy does. It refuses with ErrExists when a sale exists
	// and not force; with force an old journal is archived, never deleted.
	Restore(ctx context.Context, state ticket.State, sales []ticket.Sale, force bool) (archive string, err error)
	// Close releases what the backend holds (connections).
	Close() error
}

var (
	_ Backend = (*Store)(nil)
	_ Backend = (*Redis)(nil)
)

// OpenSpec opens the sale named by spec: "redis://..." or "rediss://..."
// for a sale in Redis (see OpenRedis), "file:PATH" or a plain PATH for a
// ticket file.
func OpenSpec(spec string, opts Options) (Backend, error) {
	if IsRedis(spec) {
		return OpenRedis(spec, opts)
	}
	return Open(strings.TrimPrefix(spec, "file:"), opts), nil
}

// IsRedis reports whether spec names a sale in Redis.
func IsRedis(spec string) bool {
	return strings.HasPrefix(spec, "redis://") || strings.HasPrefix(spec, "rediss://")
}

// Close does nothing: a Store holds no open files between calls.
func (s *Store) Close() error { return nil }
