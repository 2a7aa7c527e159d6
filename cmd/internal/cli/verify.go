package cli

import (
	"fmt"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

func runVerify(c *cli, args []string) error {
	fs, file := c.flagSet("[--wait D | --nowait] [--json] [flags]", `
Check, without changing anything, that the books balance: the ticket file
is valid, the journal's records are numbered without gaps or repeats, each
one's tickets left following from the one before, the total is the tickets
left plus those held plus those sold, every confirm and release names an
open hold and every return a sale that has the tickets, no buyer ever has
more than the sale's limit, and the journal's last record is the ticket
file's version. An expired hold counts as released. A count another
process changed under the lock is a sale made (or stock added) outside
ticket: counted, and noted as pending until the next buy records it. It
holds the lock while it reads, and prints a one-line summary when
everything balances, each discrepancy on stderr otherwise.

For a Redis sale it reads the state and the end of the journal as they
were at one moment, then the journal up to there in pages of 1000 entries
(buyers go on meanwhile; no command holds the server for long), printing
its progress on stderr for a journal of 100 000 entries or more, and says
what the server promises about acknowledged sales: its persistence, its
no-appendfsync-on-rewrite, its role, its replicas and the sale's
wait_replicas, and its maxmemory-policy.`,
		exitNote{exitOK, "the books balance"},
		exitNote{exitError, ""},
		exitNote{exitUsage, ""},
		exitNote{exitLocked, "the lock was not acquired within --wait (or at once, with --nowait)"},
		exitNote{exitInvalid, "the books do not balance (each discrepancy on stderr)"},
		exitNote{exitUnreachable, ""},
		signalExits[0], signalExits[1], signalExits[2])
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	var wait waitFlags
	wait.add(fs, "lock")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	ctx, done, err := c.saleContext(fs, &wait, *file, "interrupted: nothing was changed")
	if err != nil {
		return err
	}
	defer done()
	s, err := c.open(*file, store.Options{NoWait: wait.nowait})
	if err != nil {
		return err
	}
	defer s.Close()
	c.showProgress(s)
	r, err := s.Verify(ctx)
	if err != nil {
		return err
	}
	dur := c.durability(s, true)
	for _, p := range r.Problems {
		fmt.Fprintf(c.stderr, "ticket verify: %s: %s\n", printable(*file), p)
	}
	// A confirmed hold is a sale like a buy: count both.
	sales, sold := r.Sales+r.Booked.Confirms, r.Tickets+r.Booked.Confirmed
	if c.json {
		err = c.result(struct {
			File     string   `json:"file"`
			Balanced bool     `json:"balanced"`
			Left     int64    `json:"left"`
			Total    int64    `json:"total"`
			Sold     int64    `json:"sold"`
			Sales    int64    `json:"sales"`
			Outside  int64    `json:"outside,omitempty"`
			Added    int64    `json:"added,omitempty"`
			Pending  string   `json:"pending,omitempty"`
			Problems []string `json:"problems"`

			Durability string `json:"durability,omitempty"`
		}{printable(*file), r.Balanced(), r.State.Left(), r.State.Total(), sold, sales, r.Outside, r.Added, r.Pending, append([]string{}, r.Problems...), dur})
	} else if r.Balanced() {
		var outside string
		if r.Outside > 0 {
			outside += fmt.Sprintf(", %d taken outside ticket", r.Outside)
		}
		if r.Added > 0 {
			outside += fmt.Sprintf(", %d added outside ticket", r.Added)
		}
		if b := r.Booked; b != (ticket.Bookings{}) {
			outside += fmt.Sprintf(", %d held (%d confirmed, %d released, %d lapsed, %d held now), %d returned, %d added, %d removed", b.Holds, b.Confirmed, b.Released, b.Lapsed, r.State.Held(), b.Returned, b.Restocked, b.Removed)
		}
		switch {
		case sales == 0 && outside == "":
			err = c.line("ok: no sales recorded; %d left of %d", r.State.Left(), r.State.Total())
		default:
			err = c.line("ok: %d %s, %d %s sold%s, %d left of %d: the books balance", sales, plural(sales, "sale", "sales"), sold, plural(sold, "ticket", "tickets"), outside, r.State.Left(), r.State.Total())
		}
		if r.Pending != "" {
			fmt.Fprintf(c.stderr, "ticket verify: note: %s\n", r.Pending)
		}
	}
	if err != nil {
		return err
	}
	if !r.Balanced() {
		return shown{fmt.Errorf("%s: %d discrepancies: %w", printable(*file), len(r.Problems), ticket.ErrInvalid)}
	}
	return nil
}
