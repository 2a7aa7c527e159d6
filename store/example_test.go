package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// A sale of two tickets, bought by three buyers: the third finds it sold out.
func Example() {
	dir, _ := os.MkdirTemp("", "ticket-example")
	defer os.RemoveAll(dir)
	s := store.Open(filepath.Join(dir, "ticket.json"), store.Options{})
	ctx := context.Background()
	if _, _, err := s.Init(ctx, 2, store.Create); err != nil {
		fmt.Println(err)
		return
	}
	for _, who := range []string{"person0", "person1", "person2"} {
		r, err := s.Buy(ctx, who, 1)
		switch {
		case errors.Is(err, ticket.ErrSoldOut):
			fmt.Printf("%s got no ticket: sold out\n", who)
		case err != nil:
			fmt.Println(err)
		default:
			fmt.Printf("%s got sale #%d (%d left)\n", who, r.Sale.Seq, r.State.Left())
		}
	}
	report, _ := s.Verify(ctx)
	fmt.Println("balanced:", report.Balanced())
	// Output:
	// person0 got sale #1 (1 left)
	// person1 got sale #2 (0 left)
	// person2 got no ticket: sold out
	// balanced: true
}
