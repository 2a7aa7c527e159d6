package main

import (
	"fmt"
	"os"

	"github.com/gofrs/flock"
)

// childMain is the test binary acting as the ticket command in a process
// of its own. With TICKET_TEST_GATE set, it first waits for a shared lock
// on that file, which the test holds exclusively while it starts every
// child: releasing it lets them all run at the same moment.
func childMain() int {
	if gate := os.Getenv("TICKET_TEST_GATE"); gate != "" {
		g := flock.New(gate)
		if err := g.RLock(); err != nil {
			fmt.Fprintln(os.Stderr, "gate:", err)
			return 99
		}
		_ = g.Unlock()
	}
	return run(os.Args[1:], os.Stdout, os.Stderr)
}
