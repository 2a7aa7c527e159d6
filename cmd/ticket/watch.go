package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/ticketd/ticket/store"
)

func runWatch(c *cli, args []string) error {
	fs, file := c.flagSet("[--every D] [--json] [flags]", `
Print a heartbeat with the tickets left, at once and then every D, until the
tickets are sold out (exit 0) or it is interrupted (130/143/129). It takes no
lock: it reads whole versions of the ticket file, as ticket show does.

ticket rush runs it as its heartbeat child, which never outlives the rush:
it is stopped when the rush ends, and if the rush is killed (even with
SIGKILL) it dies with it.`)
	every := seconds(500 * time.Millisecond)
	fs.Var(&every, "every", "time between heartbeats (250ms, 2s, 1.5)")
	fs.BoolVar(&c.json, "json", false, "print each heartbeat as one JSON object per line")
	parentPipe := fs.Bool("parent-pipe", false, "stop when stdin reaches end of file (the parent closed it or died)")
	parent := wholeFlag(fs, "parent", 0, 0, math.MaxInt32, "stop at once if the parent process is not this pid")
	_ = fs.MarkHidden("parent-pipe")
	_ = fs.MarkHidden("parent")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if every <= 0 {
		return &usageError{"--every must be above zero"}
	}
	// The parent may have died before the parent-death signal was armed:
	// then this process already belongs to init, or a subreaper.
	if *parent != 0 && int64(os.Getppid()) != *parent {
		fmt.Fprintf(c.stderr, "ticket watch: parent %d is gone; stopping\n", *parent)
		return nil
	}
	gone := make(chan struct{})
	if *parentPipe {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			close(gone)
		}()
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
			err = c.result(heartbeat{*file, state.Left, state.Total, state.Sold, time.Now().UTC()})
		} else {
			err = c.line("heartbeat: %d left of %d", state.Left, state.Total)
		}
		if err != nil || state.Left == 0 {
			return err
		}
		select {
		case <-tick.C:
		case <-gone:
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
}
