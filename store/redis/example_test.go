package redis_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis"
	"github.com/ticketd/ticket/ticket"
)

// A sale in Redis, for buyers on many machines, is the same store.Backend
// as a ticket file. A buy whose answer was lost is sent again with the
// same request id: it answers with the original outcome, and never buys
// twice. (This example needs a redis-server on localhost: go test compiles
// it but does not run it.)
func ExampleOpen() {
	s, err := redis.Open("redis://127.0.0.1:6379/0?name=concert")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	ctx := context.Background()
	if _, _, err := s.Init(ctx, 100, store.Create); err != nil && !errors.Is(err, store.ErrExists) {
		fmt.Println(err)
		return
	}
	id := redis.NewRequestID()
	r, err := s.BuyRequest(ctx, id, "person3", 1)
	var unknown *redis.OutcomeUnknownError
	if errors.As(err, &unknown) {
		r, err = s.BuyRequest(ctx, id, "person3", 1) // Replayed if it had been made
	}
	switch {
	case errors.Is(err, ticket.ErrSoldOut):
		fmt.Println("sold out")
	case errors.Is(err, store.ErrUnreachable): // the message says whether anything may have been bought
		fmt.Println(err)
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Println("sale", r.Sale.Seq, "left", r.State.Left())
	}
}
