package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ticketd/ticket/store"
)

// Two rooms: two holders get in, a third that will not wait is turned away.
func ExampleSemaphore() {
	tmp, err := os.MkdirTemp("", "example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(tmp)
	sem, err := store.OpenSemaphore(filepath.Join(tmp, "sem"), "ktv", 2)
	if err != nil {
		panic(err)
	}
	for range 2 {
		slot, err := sem.Acquire(context.Background())
		if err != nil {
			panic(err)
		}
		defer slot.Release()
		fmt.Println("in room", slot.Number())
	}
	// A deadline passed on entry: do not wait.
	nowait, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	_, err = sem.Acquire(nowait)
	fmt.Println("third singer turned away:", errors.Is(err, store.ErrLocked))
	// Output:
	// in room 1
	// in room 2
	// third singer turned away: true
}
