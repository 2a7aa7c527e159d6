package cli

import (
	"fmt"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redisspec"
)

func runRepair(c *cli, args []string) error {
	fs, file := c.flagSet("[--wait D | --nowait] [--json] [flags]", `
Bring a sale back to where buying can go on, without ever selling a ticket
twice: repair never raises the count of a ticket file it can read, and
rebuilds only what cannot be read. Under the lock:

  - A ticket file that does not parse, or is missing while its journal
    holds the sale, is rebuilt from the journal. A buy is made durable by
    its journal record and the ticket file is replaced without fsync, so a
    power cut may leave it behind (the next buy completes it), empty or
    garbled. Repair checks the whole journal, moves a damaged file aside to
    FILE.damaged.TIME (it is never deleted) and writes the state the
    journal's last record leaves. A change another process made to the
    count after that record cannot be recovered.
  - A ticket file that parses is settled with its journal as the next buy
    would: records committed before a restart are written into it, records
    a crashed buyer never committed are cut, a count changed by another
    process is recorded. After a power cut, run it before programs that
    read only the ticket file (a flock + jq script) buy again.
  - A ticket file ahead of its journal (the journal was cut, replaced or
    restored from an older copy) is kept: the journal is moved aside to
    FILE.journal.TIME and a new one starts from the ticket file's count.

For a Redis sale (--store redis://...) it rebuilds the state hash from the
journal when the state is missing (deleted, evicted) or damaged, moving a
damaged one aside to ticket:{SALE}:damaged:TIME, or behind its journal (a
buy whose later writes the server refused); the sale's request ids stay
valid. It restores request ids the requests hash lost (deleted) from the
journal, and removes a TTL from the sale's keys. It decides on what verify
finds and checks its work with it: it never says sound when verify would
exit 5, and exits 5, leaving the sale as it is, when it cannot mend what
verify found (a state ahead of its journal: rebuilding would sell tickets
again).`,
		exitNote{exitOK, "the sale is sound, or was repaired"},
		exitNote{exitError, ""},
		exitNote{exitUsage, ""},
		exitNote{exitLocked, "the lock was not acquired within --wait (or at once, with --nowait)"},
		exitNote{exitInvalid, "the journal cannot rebuild it; nothing was changed"},
		exitNote{exitUnreachable, ""},
		signalExits[0], signalExits[1], signalExits[2])
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	var wait waitFlags
	wait.add(fs, "lock")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	ctx, done, err := c.waitContext(fs, &wait)
	if err != nil {
		return err
	}
	defer done()
	b, err := c.open(*file, store.Options{NoWait: wait.nowait})
	if err != nil {
		return err
	}
	defer b.Close()
	r, err := b.Repair(ctx)
	if err != nil {
		return err
	}
	repaired := r.Sales > 0 || r.Note != "" || r.Archive != ""
	if c.json {
		return c.result(struct {
			File     string `json:"file"`
			Repaired bool   `json:"repaired"`
			Records  int64  `json:"rebuilt_from_records"`
			Left     int64  `json:"left"`
			Total    int64  `json:"total"`
			Kept     string `json:"kept,omitempty"`
			Archive  string `json:"archived_journal,omitempty"`
			Note     string `json:"note,omitempty"`
		}{printable(*file), repaired, r.Sales, r.State.Left(), r.State.Total(), r.Kept, r.Archive, r.Note})
	}
	switch {
	case r.Sales > 0:
		if r.Kept != "" {
			what := "file"
			if redisspec.IsURL(*file) {
				what = "state hash"
			}
			fmt.Fprintf(c.stderr, "ticket repair: kept the damaged %s as %s\n", what, r.Kept)
		}
		return c.line("rebuilt %s from %d %s in the journal: %s", printable(*file), r.Sales, plural(r.Sales, "record", "records"), r.State)
	case repaired:
		fmt.Fprintf(c.stderr, "ticket repair: %s\n", r.Note)
		return c.line("settled %s with its journal: %s", printable(*file), r.State)
	}
	return c.line("%s is sound, nothing to repair: %s; ticket verify checks the books", printable(*file), r.State)
}
