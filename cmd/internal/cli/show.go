package cli

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

func runShow(c *cli, args []string) error {
	fs, file := c.flagSet("[--sales] [--json] [flags]", `
Print the tickets left, the total and the number sold (and held, when
holds are open; an expired hold counts as released). It takes no lock:
every write replaces the file by rename, so it always reads a whole version.
With --sales it lists every record of the journal instead, oldest first:
how the sale started, each sale ("alice bought 2"), each hold, confirm,
release (or lapse), return and restock, and each change another process
made to the count under the lock, which ticket records as tickets taken or
added outside ticket.`,
		exitNote{exitOK, ""},
		exitNote{exitError, "the ticket file is missing, or any other error"},
		exitNote{exitUsage, ""},
		exitNote{exitInvalid, ""},
		exitNote{exitUnreachable, ""})
	sales := fs.Bool("sales", false, "list the journal's records (sales and other changes), one per line")
	fs.BoolVar(&c.json, "json", false, "print JSON: one object, or with --sales one object per sale")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	s, err := c.open(*file, store.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	if *sales {
		return showSales(c, s)
	}
	state, err := s.Read()
	if err != nil {
		return err
	}
	dur := c.durability(s, true)
	if c.json {
		return c.result(stateJSON{printable(*file), state.Left(), state.Total(), state.Sold(), state.Version(), state.Held(), state.Limit(), dur})
	}
	return c.line("%s", state)
}

// stateJSON is the JSON form of a ticket file's state.
type stateJSON struct {
	File    string `json:"file"`
	Left    int64  `json:"left"`
	Total   int64  `json:"total"`
	Sold    int64  `json:"sold"`
	Version int64  `json:"version"`
	Held    int64  `json:"held,omitempty"`
	Limit   int64  `json:"limit,omitempty"`

	Durability string `json:"durability,omitempty"` // a Redis server's persistence, in words
}

// showSales prints the committed sales, one line (or JSON object) each. It
// prints nothing until the whole journal has been read, so that stdout is
// empty when it fails.
func showSales(c *cli, s store.Backend) error {
	var out bytes.Buffer
	for sale, err := range s.Sales() {
		if err != nil {
			return err
		}
		if c.json {
			b, _ := json.Marshal(sale) // a Sale always marshals
			out.Write(append(b, '\n'))
		} else {
			fmt.Fprintf(&out, "#%d %s %s", sale.Seq, sale.Time.Format("2006-01-02T15:04:05.000Z07:00"), sale.Describe())
			switch sale.Kind {
			case ticket.KindSale:
				fmt.Fprintf(&out, " (%d left) pid %d\n", sale.Left, sale.PID)
			case ticket.KindInit:
				out.WriteString("\n")
			default:
				fmt.Fprintf(&out, " (%d left of %d)\n", sale.Left, sale.Total)
			}
		}
	}
	c.wrote = true
	_, err := c.stdout.Write(out.Bytes())
	return err
}
