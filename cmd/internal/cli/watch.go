package cli

import (
	"context"
	"time"

	"github.com/ticketd/ticket/store"
)

func runWatch(c *cli, args []string) error {
	fs, file := c.flagSet("[--every D] [--json] [flags]", `
Print a heartbeat with the tickets left (and held, while holds are open), at
once and then every D, until the tickets are sold out, none left and none
held, or it is interrupted. It takes no lock: it reads whole versions of the
ticket file, as ticket show does, and counts an expired hold as released.

ticket rush runs it as its heartbeat child, which never outlives the rush:
it is stopped when the rush ends, and if the rush is killed (even with
SIGKILL) it dies with it.`,
		exitNote{exitOK, "sold out: none left and none held"},
		exitNote{exitError, ""},
		exitNote{exitUsage, ""},
		exitNote{exitInvalid, ""},
		exitNote{exitUnreachable, ""},
		signalExits[0], signalExits[1], signalExits[2])
	every := seconds(500 * time.Millisecond)
	fs.Var(&every, "every", "the time between heartbeats (250ms, 2s, 1.5)")
	fs.BoolVar(&c.json, "json", false, "print each heartbeat as one JSON object per line")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if every <= 0 {
		return &usageError{"--every must be above zero"}
	}
	ctx, stop := c.interruptible()
	defer stop()
	s, err := c.open(*file, store.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	tick := time.NewTicker(time.Duration(every))
	defer tick.Stop()
	for {
		state, err := s.Read()
		if err != nil {
			return err
		}
		if c.json {
			err = c.result(heartbeat{printable(*file), state.Left(), state.Total(), state.Sold(), time.Now().UTC(), state.Held()})
		} else if state.Held() != 0 {
			err = c.line("heartbeat: %d left of %d, %d held", state.Left(), state.Total(), state.Held())
		} else {
			err = c.line("heartbeat: %d left of %d", state.Left(), state.Total())
		}
		// Held tickets may come back (a hold released or lapsed): watch
		// on while there are any.
		if err != nil || state.Left() == 0 && state.Held() == 0 {
			return err
		}
		select {
		case <-tick.C:
		case <-c.parentGone: // nil, and so never, unless a rush's heartbeat
			return nil
		case <-ctx.Done():
			return shown{context.Canceled} // the exit status says which signal
		}
	}
}

// heartbeat is one line of ticket watch --json.
type heartbeat struct {
	File  string    `json:"file"`
	Left  int64     `json:"left"`
	Total int64     `json:"total"`
	Sold  int64     `json:"sold"`
	Time  time.Time `json:"time"`
	Held  int64     `json:"held,omitempty"` // tickets in open holds (an expired hold counts as released)
}
