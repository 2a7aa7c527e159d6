package sem_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ticketd/ticket/store/sem"
)

// Two rooms: two holders get in, a third that will not wait is turned away.
func ExampleSemaphore() {
	tmp, err := os.MkdirTemp("", "example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(tmp)
	s, err := sem.Open(filepath.Join(tmp, "sem"), "ktv", 2)
	if err != nil {
		panic(err)
	}
	for range 2 {
		slot, err := s.Acquire(context.Background())
		if err != nil {
			panic(err)
		}
		defer slot.Release()
		fmt.Println("in room", slot.Number())
	}
	// A third singer who will not wait.
	_, err = s.TryAcquire()
	fmt.Println("third singer turned away:", errors.Is(err, sem.ErrNoSlot))
	// Output:
	// in room 1
	// in room 2
	// third singer turned away: true
}
