// Package cliredis is the Redis backend's part of the ticket command
// line: the ticket-redis command sets cli.OpenRedis to Open. The ticket
// command, which buys from files, does not import it, and so links no
// Redis client.
package cliredis

import (
	"context"

	"github.com/ticketd/ticket/store/redis"
)

// Sale is a Redis sale as the command line uses it (see cli.RedisSale).
type Sale struct{ *redis.Store }

// Open opens the Redis sale at spec, a redis:// or rediss:// URL (see
// redis.Open).
func Open(spec string) (Sale, error) {
	r, err := redis.Open(spec)
	return Sale{r}, err
}

// Durability says what the server promises of an acknowledged sale, and
// whether it can lose one (see redis.Store.Durability).
func (s Sale) Durability(ctx context.Context) (desc string, canLose bool, err error) {
	d, err := s.Store.Durability(ctx)
	if err != nil {
		return "", false, err
	}
	return d.String(), d.CanLose(), nil
}
