package cli

import (
	"fmt"
	"os"
)

// guardEnv picks, in a ticket process a test starts, what stops a rush's
// heartbeat child if the rush dies (see heartbeatGuard): both, pdeathsig,
// pipe or none. Only "both" is for use; the others let the tests prove
// each mechanism alone, and that without either the child does outlive a
// killed rush.
const guardEnv = "TICKET_TEST_GUARD"

var guards = map[string]guard{
	"both":      {pdeathsig: true, pipe: true},
	"pdeathsig": {pdeathsig: true},
	"pipe":      {pipe: true},
	"none":      {},
}

// setHooks sets the test hooks a ticket process's environment asks for.
func setHooks() {
	if name := os.Getenv(guardEnv); name != "" {
		g, ok := guards[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "%s=%q: want both, pdeathsig, pipe or none\n", guardEnv, name)
			os.Exit(2)
		}
		heartbeatGuard = g
	}
}
