package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// maxBuyers bounds --buyers: each buyer is a process with two pipes.
const maxBuyers = 10000

func runRush(c *cli, args []string) error {
	fs, file := c.flagSet("--buyers N [--count C [--force]] [--qty K] [--hold D [--confirm P]] [--wait D] [--every D] [--unlocked] [--json] [flags]", `
Start N buyer processes at once, named person0 to personN-1, and check
that exactly as many got tickets as there were. Each buyer is this same
program ("ticket buy") as its own OS process. All N are started first and
held at a gate (a pipe), then released together; each reports the count it
sees without the lock, then buys under the lock. With --count C the ticket
file is first created with C tickets (an existing one is only replaced with
--force, and its journal is kept); without it the rush sells what is left.

Each buyer's result is printed as it arrives, then a summary: buyers,
tickets, how many got one, how many found it sold out, errors, tickets
left, wall time, buys per second, and "oversold: no" once the books are
checked against the ticket file (sold + left = tickets) and the journal
(ticket verify, and one journal sale per buyer told it got tickets). The
books assume no other process buys from the same file during the rush.

A heartbeat child ("ticket watch") prints the tickets left every --every on
stderr while the rush runs. It never outlives the rush: it is stopped when
the rush ends, and dies with it if the rush is killed, even by SIGKILL.
On a terminal a progress line on stderr shows buyers done and tickets left.
If the rush itself is killed, the buyers it started go on alone: each one
still buys under the lock, so the books still balance.

With --hold D the rush shows the booking flow instead of buys: each buyer
holds K tickets for D ("ticket hold"), then P percent of them (--confirm,
default 50; chosen by index, so that a run is reproducible: with 50,
person1, person3, ...) confirm their hold ("ticket confirm") and the others
let it lapse. A confirm that comes after its hold lapsed (a busy machine,
a short D) is counted as late, not as an error: exit 9 is an outcome a
buyer script branches on. When every buyer is done the rush waits until
every hold not confirmed has expired, has the lapses recorded in the
journal (it takes the lock and records what a reader only counts, as the
next buy would), and prints: holds taken, confirmed, lapsed, tickets sold,
tickets back in stock, held now (0), and "every ticket held ended sold or
back in stock" once that is checked against the ticket file, ticket verify
and the journal (one hold record per hold taken, one confirm per hold
confirmed, one lapse per hold not confirmed, nothing else). On a Redis
sale the holds lapse by the server's clock, and the rush has the lapses
recorded by a script. It does not go with --unlocked or --no-sync.

--unlocked is UNSAFE and exists only to show what the lock prevents: the
buyers skip the lock and the journal, read the same count, and overwrite
each other's sales (lost updates), so more buyers are told "you got a
ticket" than there were tickets. It needs an explicit -f PATH and says
"oversold: YES" when that happens. Never use it on a real sale: start
a new one afterwards with ticket init --count N --force.`,
		exitNote{exitOK, "the books balance, and every buyer bought (--hold: held, then confirmed, late or not) or found the tickets sold out (--hold: or its limit reached)"},
		exitNote{exitError, "the books balance but some buyer failed (its error is shown; a lock not had within --wait counts)"},
		exitNote{exitUsage, "bad flags; --hold 0, --confirm above 100, --hold with --unlocked or --no-sync"},
		exitNote{exitInvalid, "the books do not balance (oversold, lost updates, tickets still held, or discrepancies ticket verify or the journal show)"},
		exitNote{exitUnreachable, "a Redis sale's server could not be reached to check the books"},
		exitNote{exitSIGHUP, "SIGHUP: buyers still waiting for the lock stop with nothing changed, the others finish"},
		exitNote{exitSIGINT, "SIGINT (Ctrl-C): as for SIGHUP"},
		exitNote{exitSIGTERM, "SIGTERM: as for SIGHUP"})
	buyers := wholeFlag(fs, "buyers", 0, 0, math.MaxInt32, fmt.Sprintf("the number of buyer processes to start (required, 1 to %d)", maxBuyers))
	count := wholeFlag(fs, "count", 0, 0, math.MaxInt64, "first create the ticket file with `C` tickets")
	force := fs.Bool("force", false, "with --count: reset an existing sale (its journal is kept, renamed)")
	qty := wholeFlag(fs, "qty", 1, 0, math.MaxInt64, "each buyer asks for `K` tickets, all or nothing")
	var wait seconds
	fs.Var(&wait, "wait", "each buyer gives up after waiting this long for the lock (an error); default: as long as it takes")
	every := seconds(500 * time.Millisecond)
	fs.Var(&every, "every", "the time between heartbeats")
	noSync := fs.Bool("no-sync", false, "buyers skip fsync: faster, not durable across a machine crash")
	unlocked := fs.Bool("unlocked", false, "UNSAFE: buyers skip the lock and the journal (Redis: the script), to show what they prevent (needs -f or --store)")
	var hold seconds
	fs.Var(&hold, "hold", "booking mode: each buyer holds its tickets for `D` (300ms, 2s) instead of buying them")
	confirm := wholeFlag(fs, "confirm", 50, 0, math.MaxInt64, "booking mode: `P` percent of the buyers (0 to 100), chosen by index, confirm their hold")
	fs.BoolVar(&c.json, "json", false, "print the results and the summary as one JSON object")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	switch {
	case !fs.Changed("buyers"):
		return &usageError{"--buyers N is required (see ticket rush -h)"}
	case *buyers < 1 || *buyers > maxBuyers:
		return &usageError{fmt.Sprintf("--buyers %d: want 1 to %d", *buyers, maxBuyers)}
	case *qty < 1:
		return &usageError{fmt.Sprintf("--qty %d: buy at least 1 ticket", *qty)}
	case *force && !fs.Changed("count"):
		return &usageError{"--force only goes with --count"}
	case *unlocked && !specChanged(fs):
		return &usageError{"--unlocked is unsafe and needs an explicit -f PATH to a file you can spare"}
	case every <= 0:
		return &usageError{"--every must be above zero"}
	case fs.Changed("confirm") && !fs.Changed("hold"):
		return &usageError{"--confirm P only goes with --hold D (a booking rush)"}
	}
	booking := fs.Changed("hold")
	if booking {
		switch {
		case hold <= 0:
			return &usageError{"--hold D must be more than 0 (300ms, 2s, 1.5)"}
		case *confirm > 100:
			return &usageError{fmt.Sprintf("--confirm %d: want a percentage of the buyers, 0 to 100", *confirm)}
		case *unlocked:
			return &usageError{"--hold does not go with --unlocked: holds are taken under the lock"}
		case *noSync:
			return &usageError{"--hold does not go with --no-sync: holds and confirms are always made durable"}
		}
	}
	if *unlocked {
		fmt.Fprintf(c.stderr, "ticket rush: UNSAFE: --unlocked: buyers skip the lock and the journal; expect lost updates and overselling in %s\n", printable(*file))
	}
	ctx, stop := c.interruptible()
	defer stop()
	s, err := c.open(*file, store.Options{NoSync: *noSync})
	if err != nil {
		return err
	}
	defer s.Close()
	c.durability(s, false)
	if fs.Changed("count") {
		if _, archive, err := s.Init(ctx, *count, mode(*force)); err != nil {
			return err
		} else if archive != "" {
			fmt.Fprintf(c.stderr, "ticket rush: kept the old journal as %s\n", archive)
		}
	}
	start, err := s.Read()
	if err != nil {
		return err
	}

	r := &rush{
		c: c, file: *file, n: int(*buyers), qty: *qty, unlocked: *unlocked,
		progress: isTerminal(c.stderr), hold: time.Duration(hold),
	}
	if fs.Changed("wait") {
		r.wait = time.Duration(wait).String()
	}
	r.sum = rushSummary{File: printable(*file), Unlocked: *unlocked, Buyers: int(*buyers), Qty: *qty, Tickets: start.Left(), Left: start.Left(), Results: []buyerResult{}}
	if booking {
		r.sum.Booking = &bookingSummary{HoldSeconds: r.hold.Seconds(), ConfirmPercent: *confirm}
		for i := range r.n {
			if confirms(i, *confirm) {
				r.sum.Booking.ToConfirm++
			}
		}
	}
	fmt.Fprintf(c.stderr, "ticket rush: %d %s, %d %s left in %s\n", *buyers, plural(*buyers, "buyer", "buyers"), start.Left(), plural(start.Left(), "ticket", "tickets"), printable(*file))

	hb, err := startHeartbeat(*file, time.Duration(every), heartbeatGuard, c.stderr)
	if err != nil {
		return err
	}
	r.sum.HeartbeatPID = hb.cmd.Process.Pid
	defer hb.stop() // idempotent; also on the error paths

	buyArgs := []string{"buy", "-f", *file, "--qty", strconv.FormatInt(*qty, 10), "--json", "--peek"}
	if fs.Changed("wait") {
		buyArgs = append(buyArgs, "--wait", time.Duration(wait).String())
	}
	if *noSync {
		buyArgs = append(buyArgs, "--no-sync")
	}
	if *unlocked {
		buyArgs = append(buyArgs, "--unsafe-no-lock")
	}
	if err := r.startBuyers(buyArgs); err != nil {
		return err
	}
	r.collect(ctx, hb)
	if booking {
		r.settleHolds(ctx, hb)
	}
	r.sum.Heartbeats = hb.stop()
	// A beat that came after the last buyer's result is printed too, so
	// that stderr shows the beats the summary counts. stop has returned:
	// the channel is closed.
	if hb.beats != nil {
		for b := range hb.beats {
			r.printBeat(hb, b)
		}
	}
	r.check(start)
	if err := r.report(); err != nil {
		return err
	}
	switch {
	case c.signal.Load() != 0:
		return shown{context.Canceled}
	case r.unreachable != nil:
		// The books could not be checked: say why, not that they are wrong.
		return r.unreachable
	case !r.sum.Balanced:
		return shown{fmt.Errorf("%s: the books do not balance: %w", printable(*file), ticket.ErrInvalid)}
	case r.sum.Errors > 0:
		return shown{errRushFailed}
	}
	return nil
}

// rush is one run of ticket rush.
type rush struct {
	c        *cli
	file     string
	n        int
	qty      int64
	unlocked bool
	progress bool          // stderr is a terminal: keep a progress line there
	hold     time.Duration // a booking rush: how long each hold lasts; 0 for a rush of buys
	wait     string        // --wait, passed on to the buyers; "" without it

	unreachable error // the backend (Redis) could not be read after the rush

	releasedKnown int // buyers that said when they left the gate

	buyers   []*exec.Cmd
	results  chan buyerResult
	released time.Time
	sum      rushSummary
}

// rushSummary is the outcome of a rush; with --json, the one object printed.
type rushSummary struct {
	File          string          `json:"file"`
	Unlocked      bool            `json:"unlocked"`
	Buyers        int             `json:"buyers"`
	Qty           int64           `json:"qty"`
	Tickets       int64           `json:"tickets"` // left when the rush began
	Got           int             `json:"got"`
	SoldOut       int             `json:"sold_out"`
	Errors        int             `json:"errors"`
	Left          int64           `json:"left"`
	WallSeconds   float64         `json:"wall_seconds"`    // buyers released to the last one done
	BuysPerSecond float64         `json:"buys_per_second"` // successful buys per second of wall time
	Interrupted   bool            `json:"interrupted"`     // SIGINT, SIGTERM or SIGHUP stopped the rush
	StartSeconds  float64         `json:"start_seconds"`   // starting every buyer process
	ReadySeconds  float64         `json:"ready_seconds"`   // until every buyer was at the gate
	ReleaseSpread float64         `json:"release_spread_seconds"`
	Told          int64           `json:"told"` // tickets buyers were told they got
	Oversold      bool            `json:"oversold"`
	Verify        string          `json:"verify"` // "ok", "skipped: ..." or the discrepancies found
	Balanced      bool            `json:"balanced"`
	Problems      []string        `json:"problems"`
	Booking       *bookingSummary `json:"booking,omitempty"` // a booking rush (--hold) only
	HeartbeatPID  int             `json:"heartbeat_pid"`
	Heartbeats    int             `json:"heartbeats"`
	Results       []buyerResult   `json:"results"`
}

// buyerResult is one buyer's outcome, in the order they finished.
type buyerResult struct {
	Buyer    string     `json:"buyer"`
	PID      int        `json:"pid"`
	ExitCode int        `json:"exit_code"`
	Outcome  string     `json:"outcome"` // "got", "sold_out" or "error"; a booking rush: "confirmed", "lapsed", "late", "sold_out", "limit" or "error"
	Seen     *int64     `json:"seen,omitempty"`
	Left     *int64     `json:"left,omitempty"`
	Seq      int64      `json:"seq,omitempty"` // the sale's number (a booking rush: the confirm's)
	Error    string     `json:"error,omitempty"`
	Hold     string     `json:"hold,omitempty"`    // a booking rush: the hold's id
	Confirm  bool       `json:"confirm,omitempty"` // a booking rush: the buyer was to confirm its hold
	Expires  *time.Time `json:"expires,omitempty"` // a booking rush: when the hold lapses
	released int64      // when it left the gate, Unix nanoseconds; 0 if unknown
	done     time.Time
}

// startBuyers starts every buyer ("ticket buy", this program as a gated
// child: see child.go), waits until all of them are held at the gate,
// then opens it.
func (r *rush) startBuyers(buyArgs []string) error {
	g, err := newGate()
	if err != nil {
		return err
	}
	r.results = make(chan buyerResult, r.n)
	t0 := time.Now()
	for i := range r.n {
		name := fmt.Sprintf("person%d", i)
		cmd := g.command("gated", append(buyArgs, "--buyer", name)...)
		outcome := buyerOutcome
		if r.hold > 0 {
			cmd = g.command("booker", r.bookerArgs(i, name)...)
			outcome = bookerOutcome
		}
		out, errOut := new(bytes.Buffer), new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = out, errOut
		if err := cmd.Start(); err != nil {
			g.close()
			// Nobody has left the gate yet: stopping them now changes nothing.
			for _, b := range r.buyers {
				_ = b.Process.Kill()
				_ = b.Wait()
			}
			return fmt.Errorf("start buyer %s: %w (the %d buyers already started were stopped before buying)", name, err, len(r.buyers))
		}
		r.buyers = append(r.buyers, cmd)
		go func() {
			werr := cmd.Wait()
			r.results <- outcome(name, cmd, werr, out.Bytes(), errOut.Bytes())
		}()
	}
	r.sum.StartSeconds = time.Since(t0).Seconds()
	ready, released, err := g.open()
	r.sum.ReadySeconds = released.Sub(t0).Seconds()
	if ready < int64(r.n) {
		fmt.Fprintf(r.c.stderr, "ticket rush: only %d of %d buyers reached the gate; the others failed early\n", ready, r.n)
	}
	r.released = released
	return err
}

// buyerOutcome reads what a finished buyer printed and its exit status.
func buyerOutcome(name string, cmd *exec.Cmd, werr error, stdout, stderr []byte) buyerResult {
	res := buyerResult{Buyer: name, PID: cmd.Process.Pid, ExitCode: -1, done: time.Now()}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	var out struct {
		Buyer    string `json:"buyer"`
		Bought   bool   `json:"bought"`
		Left     *int64 `json:"left"`
		Seq      int64  `json:"seq"`
		Seen     *int64 `json:"seen"`
		Released int64  `json:"released"`
		Error    string `json:"error"`
	}
	jerr := json.Unmarshal(bytes.TrimSpace(stdout), &out)
	res.Seen, res.Left, res.Seq, res.released = out.Seen, out.Left, out.Seq, out.Released
	switch {
	case jerr == nil && out.Buyer != "" && out.Buyer != name:
		res.Outcome, res.Error = "error", fmt.Sprintf("reported as buyer %q", out.Buyer)
	case jerr == nil && res.ExitCode == exitOK && out.Bought:
		res.Outcome = "got"
	case jerr == nil && res.ExitCode == exitSoldOut && !out.Bought:
		res.Outcome = "sold_out"
	default:
		res.Outcome, res.Error = "error", buyerError(out.Error, stdout, stderr, werr)
	}
	return res
}

// buyerError says, in one line, why a buyer process failed: the error it
// reported, else the last line it wrote on stderr, else how it ended,
// else what it printed instead of a result.
func buyerError(reported string, stdout, stderr []byte, werr error) string {
	switch {
	case reported != "":
		return reported
	case len(bytes.TrimSpace(stderr)) > 0:
		lines := strings.Split(strings.TrimSpace(string(stderr)), "\n")
		return lines[len(lines)-1]
	case werr != nil:
		return werr.Error()
	}
	return fmt.Sprintf("unexpected output %q", bytes.TrimSpace(stdout))
}

// collect gathers the buyers' results as they finish, printing each one,
// the heartbeats and the progress line. On SIGINT, SIGTERM or SIGHUP it passes
// SIGTERM on to the buyers still running and keeps collecting.
func (r *rush) collect(ctx context.Context, hb *heartbeatChild) {
	done := ctx.Done()
	left := r.sum.Tickets
	seen := make(map[string]bool, r.n)
	r.drawProgress(0, left)
	for finished := 0; finished < r.n; {
		select {
		case res := <-r.results:
			finished++
			if seen[res.Buyer] {
				r.sum.Problems = append(r.sum.Problems, fmt.Sprintf("buyer %s reported twice", res.Buyer))
			}
			seen[res.Buyer] = true
			switch {
			case r.sum.Booking != nil:
				r.countBooking(res)
			case res.Outcome == "got":
				r.sum.Got++
			case res.Outcome == "sold_out":
				r.sum.SoldOut++
			default:
				r.sum.Errors++
			}
			if res.Left != nil && *res.Left < left { // buyers are reaped out of order
				left = *res.Left
			}
			r.sum.Results = append(r.sum.Results, res)
			if !r.c.json {
				r.clearProgress()
				_ = r.c.line("%s", res.text(r.qty))
			}
			r.drawProgress(finished, left)
		case b, ok := <-hb.beats:
			if !ok {
				hb.beats = nil // the heartbeat ended (sold out): stop listening
				continue
			}
			r.clearProgress()
			r.printBeat(hb, b)
			r.drawProgress(len(r.sum.Results), left)
		case <-done:
			done = nil
			r.clearProgress()
			r.sum.Interrupted = true
			fmt.Fprintf(r.c.stderr, "ticket rush: interrupted: passing SIGTERM to the buyers still running\n")
			for _, b := range r.buyers {
				_ = b.Process.Signal(syscall.SIGTERM) // a finished one reports an error, harmlessly
			}
		}
	}
	r.clearProgress()
	last := r.released
	for _, res := range r.sum.Results {
		if res.done.After(last) {
			last = res.done
		}
	}
	wall := last.Sub(r.released)
	r.sum.WallSeconds = wall.Seconds()
	if wall > 0 {
		r.sum.BuysPerSecond = float64(r.sum.Got) / wall.Seconds()
	}
	var first, final int64
	for _, res := range r.sum.Results {
		if res.released == 0 {
			continue
		}
		r.releasedKnown++
		if first == 0 || res.released < first {
			first = res.released
		}
		final = max(final, res.released)
	}
	r.sum.ReleaseSpread = time.Duration(final - first).Seconds()
}

// text is a buyer's result as one line.
func (res buyerResult) text(qty int64) string {
	var b strings.Builder
	b.WriteString(res.Buyer)
	if res.Seen != nil {
		fmt.Fprintf(&b, " saw %d left,", *res.Seen)
	}
	tickets := "a ticket"
	if qty != 1 {
		tickets = fmt.Sprintf("%d tickets", qty)
	}
	switch res.Outcome {
	case "got":
		fmt.Fprintf(&b, " got %s", tickets)
	case "sold_out":
		b.WriteString(" did not get a ticket: sold out")
	case "confirmed":
		fmt.Fprintf(&b, " held %s (hold %s) and confirmed it: sale #%d", tickets, res.Hold, res.Seq)
	case "lapsed":
		fmt.Fprintf(&b, " held %s (hold %s) and lets it lapse", tickets, res.Hold)
	case "late":
		fmt.Fprintf(&b, " held %s (hold %s), confirmed too late: it had lapsed", tickets, res.Hold)
	case "limit":
		fmt.Fprintf(&b, " could not hold %s: the per-buyer limit", tickets)
	default:
		fmt.Fprintf(&b, " error (exit %d): %s", res.ExitCode, res.Error)
		return b.String()
	}
	if res.Left != nil {
		fmt.Fprintf(&b, " (%d left)", *res.Left)
	}
	return b.String()
}

// printBeat prints a heartbeat on stderr.
func (r *rush) printBeat(hb *heartbeatChild, b heartbeat) {
	held := ""
	if b.Held != 0 {
		held = fmt.Sprintf(", %d held", b.Held)
	}
	fmt.Fprintf(r.c.stderr, "ticket rush: heartbeat (pid %d): %d left of %d%s\n", hb.cmd.Process.Pid, b.Left, b.Total, held)
}

func (r *rush) drawProgress(done int, left int64) {
	if r.progress {
		fmt.Fprintf(r.c.stderr, "\r\x1b[Kticket rush: %d of %d buyers done, %d left", done, r.n, left)
	}
}

func (r *rush) clearProgress() {
	if r.progress {
		fmt.Fprint(r.c.stderr, "\r\x1b[K")
	}
}

// check balances the books: what the buyers were told against the ticket
// file, and, when the buyers used the lock, against ticket verify and the
// journal's sales since the rush began.
func (r *rush) check(start ticket.State) {
	sum := &r.sum
	problem := func(format string, args ...any) {
		sum.Problems = append(sum.Problems, fmt.Sprintf(format, args...))
	}
	sum.Told = int64(sum.Got) * r.qty
	s, err := r.c.open(r.file, store.Options{})
	if err != nil {
		problem("open the sale after the rush: %v", err)
		sum.Balanced = false
		return
	}
	defer s.Close()
	end, err := s.Read()
	if errors.Is(err, store.ErrUnreachable) {
		r.unreachable = err
	}
	if err != nil {
		problem("read the ticket file after the rush: %v", err)
	} else {
		sum.Left = end.Left()
	}
	if sum.Told > sum.Tickets {
		sum.Oversold = true
		problem("oversold: %d buyers told they got %s, only %d tickets", sum.Got, plural(r.qty, "a ticket", strconv.FormatInt(r.qty, 10)+" tickets"), sum.Tickets)
	}
	if err == nil && sum.Tickets-end.Left() != sum.Told {
		problem("the ticket file went from %d to %d left, but buyers were told they got %d tickets: %d updates lost", sum.Tickets, end.Left(), sum.Told, sum.Told-(sum.Tickets-end.Left()))
	}
	switch {
	case r.unlocked:
		sum.Verify = "skipped: --unlocked buyers write no journal"
	case sum.Booking != nil:
		r.checkBooking(s, start, problem)
	default:
		r.checkJournal(s, start, problem)
	}
	sum.Balanced = len(sum.Problems) == 0
}

// checkJournal runs ticket verify and matches the journal's sales since the
// rush began with the buyers told they got tickets.
func (r *rush) checkJournal(s store.Backend, start ticket.State, problem func(string, ...any)) {
	sum := &r.sum
	if !r.verify(s, problem) {
		return
	}
	winners := make(map[string]bool)
	for _, res := range sum.Results {
		if res.Outcome == "got" {
			winners[res.Buyer] = true
		}
	}
	sold := make(map[string]bool)
	for sale, err := range s.Sales() {
		if err != nil {
			problem("journal: %v", err)
			break
		}
		if sale.Seq <= start.Version() {
			continue
		}
		switch {
		case sold[sale.Buyer]:
			problem("journal: %s bought twice (sale #%d)", sale.Buyer, sale.Seq)
		case !winners[sale.Buyer]:
			problem("journal: sale #%d to %s, who was not told it got tickets", sale.Seq, sale.Buyer)
		}
		sold[sale.Buyer] = true
	}
	for w := range winners {
		if !sold[w] {
			problem("journal: %s was told it got tickets but has no sale", w)
		}
	}
}

// verify runs ticket verify, and reports whether it could.
func (r *rush) verify(s store.Backend, problem func(string, ...any)) bool {
	sum := &r.sum
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := s.Verify(ctx)
	switch {
	case err != nil:
		sum.Verify = err.Error()
		problem("verify: %v", err)
		return false
	case !rep.Balanced():
		sum.Verify = strings.Join(rep.Problems, "; ")
		for _, p := range rep.Problems {
			problem("verify: %s", p)
		}
	case sum.Booking != nil:
		sum.Verify = fmt.Sprintf("ok, %d sales, %d tickets held of which %d confirmed, %d lapsed, %d released", rep.Sales+rep.Booked.Confirms, rep.Booked.Holds, rep.Booked.Confirmed, rep.Booked.Lapsed, rep.Booked.Released)
	default:
		sum.Verify = fmt.Sprintf("ok, %d sales", rep.Sales)
	}
	return true
}

// report prints the summary on stdout.
func (r *rush) report() error {
	sum := r.sum
	if r.c.json {
		return r.c.result(sum)
	}
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	if sum.Unlocked {
		line("UNSAFE rush: --unlocked, the buyers skipped the lock")
	}
	spread := "(unknown)"
	if r.releasedKnown > 1 {
		spread = round(sum.ReleaseSpread)
	}
	line("buyers:     %d %s (started in %s, all at the gate after %s, left it within %s)", sum.Buyers, plural(int64(sum.Buyers), "process", "processes"), round(sum.StartSeconds), round(sum.ReadySeconds), spread)
	line("tickets:    %d in %s", sum.Tickets, sum.File)
	if sum.Booking != nil {
		r.reportBooking(line)
		line("heartbeat:  pid %d, %d %s, stopped", sum.HeartbeatPID, sum.Heartbeats, plural(int64(sum.Heartbeats), "beat", "beats"))
		if sum.Interrupted {
			line("interrupted: yes (buyers still waiting were stopped; the books are as they stand)")
		}
		r.c.wrote = true
		_, err := io.WriteString(r.c.stdout, b.String())
		return err
	}
	if r.qty == 1 {
		line("got one:    %d", sum.Got)
	} else {
		line("got %d:      %d", r.qty, sum.Got)
	}
	line("sold out:   %d", sum.SoldOut)
	line("errors:     %d", sum.Errors)
	line("left:       %d", sum.Left)
	line("wall time:  %s", round(sum.WallSeconds))
	line("buys/s:     %.0f (successful buys per second of wall time)", sum.BuysPerSecond)
	if sum.Interrupted {
		line("interrupted: yes (buyers still waiting were stopped; the books are as they stand)")
	}
	line("heartbeat:  pid %d, %d %s, stopped", sum.HeartbeatPID, sum.Heartbeats, plural(int64(sum.Heartbeats), "beat", "beats"))
	line("verify:     %s", sum.Verify)
	if sum.Oversold {
		line("oversold:   YES (%d buyers told they got %s, only %d tickets)", sum.Got, plural(r.qty, "a ticket", strconv.FormatInt(r.qty, 10)+" tickets"), sum.Tickets)
	} else {
		line("oversold:   no")
	}
	if sum.Balanced {
		line("books:      balance (%d sold + %d left = %d tickets)", sum.Told, sum.Left, sum.Tickets)
	} else {
		line("books:      DO NOT balance")
		for _, p := range sum.Problems {
			line("  - %s", p)
		}
	}
	if sum.Unlocked {
		line("next:       the unlocked buyers wrote no journal, so buy and verify refuse this sale: start a new one with ticket init --count N --force --store %s", shellQuote(sum.File))
	}
	r.c.wrote = true
	_, err := io.WriteString(r.c.stdout, b.String())
	return err
}

// round shows a duration in seconds to a readable precision.
func round(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
