package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// A booking rush (ticket rush --hold D): every buyer holds its tickets
// ("ticket hold"), the buyers chosen to confirm then confirm their hold
// ("ticket confirm"), the others let it lapse. The rush waits until every
// hold not confirmed has expired, has the lapses recorded (Store.Settle),
// and balances the books: every ticket held ended sold or back in stock.

// bookingSummary is what a booking rush adds to its summary.
type bookingSummary struct {
	HoldSeconds    float64 `json:"hold_seconds"`    // how long each hold lasts
	ConfirmPercent int64   `json:"confirm_percent"` // the share of buyers chosen to confirm
	ToConfirm      int     `json:"to_confirm"`      // buyers chosen to confirm
	Holds          int     `json:"holds"`           // holds taken
	HeldTickets    int64   `json:"held_tickets"`    // tickets those holds took
	Confirmed      int     `json:"confirmed"`       // holds confirmed: sales
	Lapsed         int     `json:"lapsed"`          // holds let lapse
	Late           int     `json:"late"`            // holds whose confirm came after they lapsed (exit 9)
	LimitRefused   int     `json:"limit_refused"`   // holds refused at the sale's per-buyer limit (exit 8)
	SoldTickets    int64   `json:"sold_tickets"`    // tickets the confirmed holds sold
	BackTickets    int64   `json:"back_tickets"`    // tickets of lapsed holds, back in stock
	HeldNow        int64   `json:"held_now"`        // tickets still held once the holds expired and were settled
	WaitedSeconds  float64 `json:"waited_seconds"`  // the wait, after the last buyer, for the holds to expire
	Settled        string  `json:"settled"`         // what recording the lapses did: "ok" or the error
	JournalHolds   int     `json:"journal_holds"`   // hold records since the rush began
	JournalConfirm int     `json:"journal_confirms"`
	JournalLapses  int     `json:"journal_lapses"` // release records, reason lapsed
	AllAccounted   bool    `json:"all_accounted"`  // every ticket held ended sold or back in stock, by the file, verify and the journal
}

// confirms reports whether buyer i of a booking rush confirms its hold:
// pct percent of the buyers, spread evenly by index, so that a run is
// reproducible: with 50, person1, person3, ...
func confirms(i int, pct int64) bool {
	return (int64(i)+1)*pct/100 > int64(i)*pct/100
}

// bookerArgs is the command line of booking buyer i (see bookerChild).
func (r *rush) bookerArgs(i int, name string) []string {
	verb := "lapse"
	if confirms(i, r.sum.Booking.ConfirmPercent) {
		verb = "confirm"
	}
	return []string{verb, r.file, name, strconv.FormatInt(r.qty, 10), r.hold.String(), r.wait}
}

// bookerReport is what a booking buyer prints: one JSON object.
type bookerReport struct {
	Buyer       string    `json:"buyer"`
	Released    int64     `json:"released"` // when it left the gate, Unix nanoseconds
	Confirm     bool      `json:"confirm"`  // it was to confirm its hold
	Hold        string    `json:"hold,omitempty"`
	Expires     time.Time `json:"expires,omitzero"`
	Left        *int64    `json:"left,omitempty"` // left after its last command
	HoldExit    int       `json:"hold_exit"`
	ConfirmExit *int      `json:"confirm_exit,omitempty"`
	Sale        int64     `json:"sale,omitempty"` // the confirm's record number
	Error       string    `json:"error,omitempty"`
}

// bookerChild is one buyer of a booking rush, past the gate: it runs
// "ticket hold" and, if it is to confirm, "ticket confirm" on its hold,
// in this process, and prints a bookerReport. Its arguments: "confirm" or
// "lapse", the sale, the buyer, the tickets to hold, how long, and the
// lock wait ("" for as long as it takes). It exits 0 when it did what it
// was to do, else as the command that failed did (3 sold out, 8 limit,
// 9 the confirm came after the hold lapsed).
func bookerChild(c *cli, released time.Time, args []string) int {
	if len(args) != 6 {
		fmt.Fprintf(c.stderr, "ticket: error: a booking buyer takes confirm or lapse, the sale, the buyer, the tickets, the hold's duration and the lock wait, not %q\n", args)
		return exitUsage
	}
	rep := bookerReport{Buyer: args[2], Released: released.UnixNano(), Confirm: args[0] == "confirm"}
	stdout := c.stdout
	// run runs one command line of this program, its result read into v.
	run := func(v any, line ...string) int {
		if args[5] != "" {
			line = append(line, "--wait", args[5])
		}
		var out, errOut bytes.Buffer
		c.stdout, c.stderr, c.wrote, c.json = &out, &errOut, false, false
		code := c.run(append(line, "--json"))
		c.stderr = os.Stderr
		os.Stderr.Write(errOut.Bytes())
		if code != exitOK {
			if msg := strings.TrimSpace(errOut.String()); msg != "" {
				rep.Error = msg[strings.LastIndexByte(msg, '\n')+1:]
			} else {
				rep.Error = fmt.Sprintf("%s exited %d", line[0], code)
			}
		}
		if err := json.Unmarshal(out.Bytes(), v); err != nil && code == exitOK {
			rep.Error = fmt.Sprintf("%s printed %q: %v", line[0], out.Bytes(), err)
			return exitError
		}
		return code
	}
	var held struct {
		Hold    string    `json:"hold"`
		Expires time.Time `json:"expires"`
		Left    *int64    `json:"left"`
	}
	rep.HoldExit = run(&held, "hold", "-f", args[1], "--buyer", args[2], "--qty", args[3], "--for", args[4])
	code := rep.HoldExit
	if code == exitOK {
		rep.Hold, rep.Expires, rep.Left = held.Hold, held.Expires, held.Left
	}
	if code == exitOK && rep.Confirm {
		var sale struct {
			Seq  int64  `json:"seq"`
			Left *int64 `json:"left"`
		}
		code = run(&sale, "confirm", "-f", args[1], held.Hold)
		rep.ConfirmExit = &code
		if code == exitOK {
			rep.Sale, rep.Left = sale.Seq, sale.Left
		}
	}
	c.stdout = stdout
	if err := c.result(rep); err != nil {
		return exitUnconfirmed
	}
	return code
}

// bookerOutcome reads what a finished booking buyer printed and its exit
// status.
func bookerOutcome(name string, cmd *exec.Cmd, werr error, stdout, stderr []byte) buyerResult {
	res := buyerResult{Buyer: name, PID: cmd.Process.Pid, ExitCode: -1, done: time.Now()}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	var rep bookerReport
	jerr := json.Unmarshal(bytes.TrimSpace(stdout), &rep)
	res.Left, res.Seq, res.released, res.Hold, res.Confirm = rep.Left, rep.Sale, rep.Released, rep.Hold, rep.Confirm
	if !rep.Expires.IsZero() {
		res.Expires = &rep.Expires
	}
	switch {
	case jerr == nil && rep.Buyer != name:
		res.Outcome, res.Error = "error", fmt.Sprintf("reported as buyer %q", rep.Buyer)
	case jerr == nil && rep.Hold != "" && res.ExitCode == exitOK && rep.Confirm && rep.Sale != 0:
		res.Outcome = "confirmed"
	case jerr == nil && rep.Hold != "" && res.ExitCode == exitOK && !rep.Confirm:
		res.Outcome = "lapsed"
	case jerr == nil && rep.Hold != "" && res.ExitCode == exitLapsed && rep.Confirm:
		res.Outcome = "late"
	case jerr == nil && rep.Hold == "" && res.ExitCode == exitSoldOut:
		res.Outcome = "sold_out"
	case jerr == nil && rep.Hold == "" && res.ExitCode == exitLimit:
		res.Outcome = "limit"
	default:
		res.Outcome, res.Error = "error", buyerError(rep.Error, stdout, stderr, werr)
	}
	return res
}

// countBooking counts a booking buyer's outcome in the summary.
func (r *rush) countBooking(res buyerResult) {
	b := r.sum.Booking
	if res.Hold != "" {
		b.Holds++
		b.HeldTickets += r.qty
	}
	switch res.Outcome {
	case "confirmed":
		r.sum.Got++
		b.Confirmed++
		b.SoldTickets += r.qty
	case "lapsed":
		b.Lapsed++
		b.BackTickets += r.qty
	case "late":
		b.Late++
		b.BackTickets += r.qty
	case "sold_out":
		r.sum.SoldOut++
	case "limit":
		b.LimitRefused++
	default:
		r.sum.Errors++
	}
}

// settleHolds waits until every hold the buyers took and did not confirm
// has expired, showing the heartbeats meanwhile, then has the lapses
// recorded by taking the lock (Store.Settle): the journal then holds the
// release of each. An interrupt cuts the wait short; what has lapsed is
// recorded all the same.
func (r *rush) settleHolds(ctx context.Context, hb *heartbeatChild) {
	b := r.sum.Booking
	var deadline, last time.Time
	unknown, open := false, 0
	for _, res := range r.sum.Results {
		last = maxTime(last, res.done)
		switch {
		case res.Outcome == "error":
			unknown = true // it may have held before it failed
		case res.Hold != "" && res.Outcome != "confirmed" && res.Expires != nil:
			deadline = maxTime(deadline, *res.Expires)
			open++
		}
	}
	if unknown {
		// A hold a failed buyer took was decided before it ended.
		deadline = maxTime(deadline, last.Add(r.hold))
	}
	t0 := time.Now()
	if wait := time.Until(deadline); wait > 0 && !r.sum.Interrupted {
		fmt.Fprintf(r.c.stderr, "ticket rush: waiting %s for the %d %s not confirmed to lapse\n", round(wait.Seconds()), open, plural(int64(open), "hold", "holds"))
		// Expire counts a hold lapsed once its expiry is not after now.
		timer := time.NewTimer(wait + time.Millisecond)
		defer timer.Stop()
	wait:
		for {
			select {
			case <-timer.C:
				break wait
			case <-ctx.Done():
				r.sum.Interrupted = true
				fmt.Fprintf(r.c.stderr, "ticket rush: interrupted: not waiting for the holds to lapse\n")
				break wait
			case beat, ok := <-hb.beats:
				if !ok {
					hb.beats = nil
					continue
				}
				r.printBeat(hb, beat)
			}
		}
	}
	b.WaitedSeconds = time.Since(t0).Seconds()
	// Not ctx: an interrupted rush still records what has lapsed.
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := r.c.open(r.file, store.Options{})
	var st ticket.State
	if err == nil {
		defer s.Close()
		inner := store.Backend(s)
		if h, ok := s.(*hinted); ok {
			inner = h.Backend
		}
		if fs, ok := inner.(settler); !ok {
			err = fmt.Errorf("%s cannot record lapsed holds", printable(r.file))
		} else {
			st, err = fs.Settle(sctx)
		}
	}
	if err != nil {
		b.Settled = err.Error()
		r.sum.Problems = append(r.sum.Problems, fmt.Sprintf("record the lapsed holds: %v", err))
		return
	}
	b.Settled = "ok"
	b.HeldNow = st.Held()
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// settler is a sale that records what a reader only counts (the lapsed
// holds): a ticket file (store.Store.Settle) or a Redis sale.
type settler interface {
	Settle(ctx context.Context) (ticket.State, error)
}

// fileStore returns the ticket file b is, if it is one.
func fileStore(b store.Backend) (*store.Store, bool) {
	if h, ok := b.(*hinted); ok {
		b = h.Backend
	}
	s, ok := b.(*store.Store)
	return s, ok
}

// checkBooking balances a booking rush's books once its holds are settled:
// the buyers' reports against the ticket file (done by check), ticket
// verify, and the journal's records since the rush began: one hold per
// buyer that held, one confirm per hold confirmed, one lapse per hold not
// confirmed, and nothing else.
func (r *rush) checkBooking(s store.Backend, start ticket.State, problem func(string, ...any)) {
	sum, b := &r.sum, r.sum.Booking
	r.verify(s, problem)
	if b.HeldNow != 0 {
		problem("%d %s still held after every hold of the rush expired", b.HeldNow, plural(b.HeldNow, "ticket is", "tickets are"))
	}
	if b.HeldTickets != b.SoldTickets+b.BackTickets {
		problem("%d tickets held, but %d sold and %d back in stock", b.HeldTickets, b.SoldTickets, b.BackTickets)
	}
	byHold := make(map[string]buyerResult)
	for _, res := range sum.Results {
		if res.Hold != "" {
			byHold[res.Hold] = res
		}
	}
	type fate struct {
		held                 bool
		confirmed, released  int
		lapsed               bool
		heldQty, confirmedAt int64
	}
	fates := make(map[string]*fate)
	of := func(id string) *fate {
		if fates[id] == nil {
			fates[id] = &fate{}
		}
		return fates[id]
	}
	for rec, err := range s.Sales() {
		if err != nil {
			problem("journal: %v", err)
			break
		}
		if rec.Seq <= start.Version() {
			continue
		}
		switch rec.Kind {
		case ticket.KindHold:
			b.JournalHolds++
			f := of(rec.Hold)
			f.held, f.heldQty = true, rec.Qty
			if res, ok := byHold[rec.Hold]; !ok || res.Buyer != rec.Buyer {
				problem("journal: hold %s (#%d) of %s, which no buyer reported", rec.Hold, rec.Seq, rec.Buyer)
			} else if rec.Qty != r.qty {
				problem("journal: hold %s of %d tickets, not %d", rec.Hold, rec.Qty, r.qty)
			}
		case ticket.KindConfirm:
			b.JournalConfirm++
			f := of(rec.Hold)
			f.confirmed++
			f.confirmedAt = rec.Seq
		case ticket.KindRelease:
			f := of(rec.Hold)
			f.released++
			if rec.Reason == ticket.ReasonLapsed {
				b.JournalLapses++
				f.lapsed = true
			} else {
				problem("journal: hold %s released (#%d): the rush's buyers release nothing", rec.Hold, rec.Seq)
			}
		default:
			problem("journal: #%d is a %s record, which the rush's buyers do not make", rec.Seq, rec.Kind)
		}
	}
	for id, f := range fates {
		res, reported := byHold[id]
		switch {
		case !f.held:
			problem("journal: hold %s ends but was not taken during the rush", id)
		case f.confirmed+f.released != 1:
			problem("journal: hold %s has %d confirms and %d releases, want exactly one of them", id, f.confirmed, f.released)
		case reported && res.Outcome == "confirmed" && (f.confirmed != 1 || f.confirmedAt != res.Seq):
			problem("journal: %s was told its hold %s is sale #%d, but the journal does not confirm it there", res.Buyer, id, res.Seq)
		case reported && res.Outcome != "confirmed" && f.confirmed != 0:
			problem("journal: hold %s of %s is confirmed, but %s was not told so", id, res.Buyer, res.Buyer)
		}
	}
	for id, res := range byHold {
		if fates[id] == nil || !fates[id].held {
			problem("journal: %s was told it holds %s, but the journal has no such hold", res.Buyer, id)
		}
	}
	b.AllAccounted = len(sum.Problems) == 0
}

// reportBooking writes a booking rush's summary lines.
func (r *rush) reportBooking(line func(string, ...any)) {
	sum, b := r.sum, r.sum.Booking
	tickets := func(n int64) string { return fmt.Sprintf("%d %s", n, plural(n, "ticket", "tickets")) }
	line("booking:    each buyer holds %s for %s; %d%% confirm (%d of %d buyers, by index), the others let it lapse", tickets(r.qty), round(b.HoldSeconds), b.ConfirmPercent, b.ToConfirm, sum.Buyers)
	line("holds:      %d taken (%s), %d refused sold out, %d at the limit", b.Holds, tickets(b.HeldTickets), sum.SoldOut, b.LimitRefused)
	line("confirmed:  %d (%s sold)", b.Confirmed, tickets(b.SoldTickets))
	line("lapsed:     %d let lapse, %d confirmed too late (%s back in stock)", b.Lapsed, b.Late, tickets(b.BackTickets))
	line("errors:     %d", sum.Errors)
	line("left:       %d (of %d at the start)", sum.Left, sum.Tickets)
	line("held now:   %d (after waiting %s for the holds to expire; recording the lapses: %s)", b.HeldNow, round(b.WaitedSeconds), b.Settled)
	line("wall time:  %s (the buyers, without the wait)", round(sum.WallSeconds))
	line("journal:    %d holds, %d confirms, %d lapses since the rush began", b.JournalHolds, b.JournalConfirm, b.JournalLapses)
	line("verify:     %s", sum.Verify)
	if b.AllAccounted {
		line("books:      balance: every ticket held ended sold or back in stock (%d held = %d sold + %d back; %d sold + %d left = %d tickets)",
			b.HeldTickets, b.SoldTickets, b.BackTickets, sum.Told, sum.Left, sum.Tickets)
	} else {
		line("books:      DO NOT balance")
		for _, p := range sum.Problems {
			line("  - %s", p)
		}
	}
}
