package main

import (
	"fmt"

	"github.com/ticketd/ticket/store"
)

func runRepair(c *cli, args []string) error {
	fs, file := c.flagSet("[--json] [flags]", `
Rebuild a damaged ticket file from the sales journal. A buy is made
durable by its journal line; the ticket file is replaced without fsync, so
on a file system that does not flush a file renamed over another before
the rename (ext4 without its journal, xfs) a power cut may leave the ticket
file empty or garbled. Under
the lock, repair checks the whole journal, moves the damaged file aside to
FILE.damaged.TIME (it is never deleted) and writes the journal's last state.
A ticket file that parses is left alone. Exit 0 when the file is sound or
was rebuilt, 5 when the journal cannot rebuild it (nothing is changed).
For a Redis sale (--store redis://...) it rebuilds the state hash from the
journal when the state is missing (deleted, evicted) or damaged, moving a
damaged one aside to ticket:{SALE}:damaged:TIME; the sale's request ids
stay valid.`)
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	var wait waitFlags
	wait.add(fs, "lock")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	ctx, done, err := c.waitContext(fs, &wait)
	if err != nil {
		return err
	}
	defer done()
	b, err := c.open(*file, store.Options{})
	if err != nil {
		return err
	}
	defer b.Close()
	var r store.Repaired
	switch s := b.(type) {
	case *store.Store:
		r, err = s.Repair(ctx)
	case redisSale:
		r, err = s.Repair(ctx)
	default:
		return &usageError{"repair works on a ticket file or a Redis sale"}
	}
	if err != nil {
		return err
	}
	if c.json {
		return c.result(struct {
			File     string `json:"file"`
			Repaired bool   `json:"repaired"`
			Sales    int64  `json:"rebuilt_from_sales"`
			Left     int64  `json:"left"`
			Total    int64  `json:"total"`
			Kept     string `json:"kept,omitempty"`
		}{*file, r.Sales > 0, r.Sales, r.State.Left, r.State.Total, r.Kept})
	}
	if r.Sales == 0 {
		return c.line("%s is sound, nothing to repair: %s; ticket verify checks the books", *file, r.State)
	}
	if r.Kept != "" {
		what := "file"
		if store.IsRedis(*file) {
			what = "state hash"
		}
		fmt.Fprintf(c.stderr, "ticket repair: kept the damaged %s as %s\n", what, r.Kept)
	}
	return c.line("rebuilt %s from %d %s in the journal: %s", *file, r.Sales, plural(r.Sales, "sale", "sales"), r.State)
}
