package cli

import (
	"fmt"
	"math"

	"github.com/ticketd/ticket/store"
)

func runInit(c *cli, args []string) error {
	fs, file := c.flagSet("--count N [--force] [--wait D | --nowait] [flags]", `
Create the ticket file with N tickets, an empty sales journal (PATH.journal)
and the lock file (PATH.lock). It refuses to replace an existing ticket file
unless --force, which resets the sale under the lock; the old journal is
kept, renamed with a timestamp, never deleted. --force never overwrites a
file it cannot parse.`,
		exitNote{exitOK, "created"},
		exitNote{exitError, "the ticket file exists (without --force), or any other error"},
		exitNote{exitUsage, ""},
		exitNote{exitLocked, "the lock was not acquired within --wait (or at once, with --nowait)"},
		exitNote{exitInvalid, "--force found a file it cannot parse"},
		exitNote{exitUnreachable, ""},
		signalExits[0], signalExits[1], signalExits[2])
	count := wholeFlag(fs, "count", 0, 0, math.MaxInt64, "the number of tickets (required; 0 to 9223372036854775807)")
	force := fs.Bool("force", false, "reset an existing sale")
	var wait waitFlags
	wait.add(fs, "lock")
	noSync := fs.Bool("no-sync", false, "skip fsync: faster, not durable across a machine crash")
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if !fs.Changed("count") {
		return &usageError{"--count N is required (see ticket init -h)"}
	}
	n := *count
	ctx, done, err := c.waitContext(fs, &wait)
	if err != nil {
		return err
	}
	defer done()
	s, err := c.open(*file, store.Options{NoSync: *noSync, NoWait: wait.nowait})
	if err != nil {
		return err
	}
	defer s.Close()
	state, archive, err := s.Init(ctx, n, mode(*force))
	if err != nil {
		return err
	}
	c.durability(s, false)
	if c.json {
		return c.result(struct {
			File            string `json:"file"`
			Left            int64  `json:"left"`
			Total           int64  `json:"total"`
			ArchivedJournal string `json:"archived_journal,omitempty"`
		}{printable(*file), state.Left(), state.Total(), archive})
	}
	if archive != "" {
		fmt.Fprintf(c.stderr, "ticket init: kept the old journal as %s\n", archive)
	}
	return c.line("%s: %d %s", printable(*file), state.Total(), plural(state.Total(), "ticket", "tickets"))
}

// mode is store.Replace for --force, store.Create without it.
func mode(force bool) store.Mode {
	if force {
		return store.Replace
	}
	return store.Create
}
