package cli

import (
	"fmt"
	"math"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

func runInit(c *cli, args []string) error {
	fs, file := c.flagSet("--count N [--limit K] [--force] [--wait D | --nowait] [flags]", `
Create the ticket file with N tickets, an empty sales journal (PATH.journal)
and the lock file (PATH.lock). It refuses to replace an existing ticket file
unless --force, which resets the sale under the lock; the old journal is
kept, renamed with a timestamp, never deleted. --force never overwrites a
file it cannot parse. With --limit K no buyer may have more than K tickets
at once (bought and not returned, plus held): buy and hold then need
--buyer, and refuse with exit 8 what would pass the limit.`,
		exitNote{exitOK, "created"},
		exitNote{exitError, "the ticket file exists (without --force), or any other error"},
		exitNote{exitUsage, ""},
		exitNote{exitLocked, "the lock was not acquired within --wait (or at once, with --nowait)"},
		exitNote{exitInvalid, "--force found a file it cannot parse"},
		exitNote{exitUnreachable, ""},
		signalExits[0], signalExits[1], signalExits[2])
	count := wholeFlag(fs, "count", 0, 0, math.MaxInt64, "the number of tickets (required; 0 to 9223372036854775807)")
	limit := wholeFlag(fs, "limit", 0, 1, math.MaxInt64, "at most `K` tickets a buyer may have at once, bought and not returned plus held (default: no limit); buy and hold then need --buyer")
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
	var state ticket.State
	var archive string
	if fs.Changed("limit") {
		b, ok := s.(*hinted).Backend.(store.Booking)
		if !ok {
			return &usageError{fmt.Sprintf("%s: this sale does not take --limit", printable(*file))}
		}
		state, archive, err = b.InitLimit(ctx, n, *limit, mode(*force))
		err = s.(*hinted).hint(err, "init")
	} else {
		state, archive, err = s.Init(ctx, n, mode(*force))
	}
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
			Limit           int64  `json:"limit,omitempty"`
		}{printable(*file), state.Left(), state.Total(), archive, state.Limit()})
	}
	if archive != "" {
		fmt.Fprintf(c.stderr, "ticket init: kept the old journal as %s\n", archive)
	}
	if state.Limit() != 0 {
		return c.line("%s: %d %s, at most %d a buyer", printable(*file), state.Total(), plural(state.Total(), "ticket", "tickets"), state.Limit())
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
