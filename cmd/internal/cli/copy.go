package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

func runCopy(c *cli, args []string) error {
	fs, _ := c.flagSet("SRC DST [--force] [--json]", `
Copy a sale, its state and its whole journal, from SRC to DST, each a
ticket file (PATH or file:PATH) or a Redis sale (redis://HOST:PORT/DB?name=SALE):
a file into Redis before the peak, Redis back into the file after it.

It first verifies SRC (its books must balance), copies it, then verifies
both sides again: DST must balance and hold SRC's state and sales exactly,
and SRC must not have changed meanwhile (stop the buyers first). It refuses
when DST already holds a sale, unless --force, which keeps DST's old
journal under an archive name, never deleting it. SRC is left as it was:
sell from one side only.

A Redis side is read and written in pages of 1000 journal entries, so that
no command holds the server for long (a Redis DST gets its journal in a
temporary stream that one transaction puts in place with the state), and
the progress is printed on stderr for 100 000 entries or more.

A ticket file whose journal records changes made outside ticket (a
cooperating buyer's sales, "outside", or stock it added, "restock") is not
copied into Redis, whose journal holds ticket's own records only: copy exits
1 with nothing written, and the way on is a new Redis sale started with the
tickets left (ticket init --count N --store redis://...).

A Redis DST that has a journal without its state is refused (exit 5):
repair it, or use --force.`,
		exitNote{exitOK, "copied, and both sides balance"},
		exitNote{exitError, "DST holds a sale (without --force), or any other error"},
		exitNote{exitUsage, ""},
		exitNote{exitInvalid, "SRC or DST does not balance"},
		exitNote{exitUnreachable, "a Redis server could not be reached or could not take the writes (a replica, out of memory)"},
		signalExits[0], signalExits[1], signalExits[2])
	_ = fs.MarkHidden("file") // SRC and DST are arguments
	_ = fs.MarkHidden("store")
	force := fs.Bool("force", false, "replace a sale DST already holds (its journal is kept, renamed)")
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	if _, err := c.parse(fs, args, 2); err != nil {
		return err
	}
	if specChanged(fs) {
		return &usageError{"copy takes SRC and DST as arguments, not -f/--store"}
	}
	srcSpec, dstSpec := fs.Arg(0), fs.Arg(1)
	srcName, dstName := printable(srcSpec), printable(dstSpec) // as printed: no password
	if srcSpec == dstSpec {
		return &usageError{"SRC and DST are the same sale"}
	}
	ctx, stop := c.interruptible()
	defer stop()
	src, err := c.open(srcSpec, store.Options{})
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := c.open(dstSpec, store.Options{})
	if err != nil {
		return err
	}
	defer dst.Close()
	c.showProgress(src)
	c.showProgress(dst)

	before, err := src.Verify(ctx)
	if err != nil {
		return fmt.Errorf("copy from %s: %w", srcName, err)
	}
	if !before.Balanced() {
		return fmt.Errorf("copy from %s: the books do not balance (%v); run ticket verify: %w", srcName, before.Problems, ticket.ErrInvalid)
	}
	if before.Pending != "" {
		return fmt.Errorf("copy from %s: %s: settle it first with ticket repair --store %s", srcName, before.Pending, shellQuote(srcName))
	}
	var records []ticket.Record
	var sales int64
	for s, err := range src.Sales() {
		if err != nil {
			return fmt.Errorf("copy from %s: %w", srcName, err)
		}
		if s.Seq <= before.State.Version() { // not one sold since verify looked
			records = append(records, s)
			if s.Kind == ticket.KindSale {
				sales++
			}
		}
	}
	if sales != before.Sales {
		return fmt.Errorf("copy from %s: read %d sales, verify counted %d: a buyer is selling from it; stop the buyers and copy again", srcName, sales, before.Sales)
	}
	archive, err := dst.Restore(ctx, before.State, records, mode(*force))
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dstName, err)
	}
	c.durability(dst, false)
	if err := copyCheck(ctx, src, dst, before); err != nil {
		return fmt.Errorf("copy %s to %s: %w", srcName, dstName, err)
	}
	if c.json {
		return c.result(struct {
			From            string `json:"from"`
			To              string `json:"to"`
			Sales           int64  `json:"sales"`
			Left            int64  `json:"left"`
			Total           int64  `json:"total"`
			Version         int64  `json:"version"`
			ArchivedJournal string `json:"archived_journal,omitempty"`
		}{srcName, dstName, before.Sales, before.State.Left(), before.State.Total(), before.State.Version(), archive})
	}
	if archive != "" {
		fmt.Fprintf(c.stderr, "ticket copy: kept the old journal of %s as %s\n", dstName, archive)
	}
	return c.line("copied %s to %s: %d sales, %d left of %d; both sides balance", srcName, dstName, before.Sales, before.State.Left(), before.State.Total())
}

// copyCheck verifies both sides after a copy: each balances, SRC has not
// moved since it was read, and DST holds exactly its state and sales.
func copyCheck(ctx context.Context, src, dst store.Backend, before store.Report) error {
	after, err := src.Verify(ctx)
	if err != nil {
		return err
	}
	if !after.Balanced() || !sameState(after.State, before.State) {
		return errors.New("the source changed during the copy (a buyer was selling from it): stop the buyers and copy again with --force")
	}
	got, err := dst.Verify(ctx)
	if err != nil {
		return err
	}
	if !got.Balanced() {
		return fmt.Errorf("the destination does not balance after the copy: %v: %w", got.Problems, ticket.ErrInvalid)
	}
	if !sameState(got.State, before.State) || got.Sales != before.Sales || got.Tickets != before.Tickets {
		return fmt.Errorf("the destination holds %d sales and %s, the source %d sales and %s: %w", got.Sales, got.State, before.Sales, before.State, ticket.ErrInvalid)
	}
	return nil
}

func sameState(a, b ticket.State) bool {
	return a.Left() == b.Left() && a.Total() == b.Total() && a.Sold() == b.Sold() && a.Version() == b.Version()
}
