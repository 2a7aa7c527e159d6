package cli

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/spf13/pflag"
	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redisspec"
	"github.com/ticketd/ticket/ticket"
)

// openBooking starts a booking command's wait for the lock and opens its
// sale: the context the request runs in (done releases it), the sale and
// its hints.
func (c *cli) openBooking(fs *pflag.FlagSet, spec string, w *waitFlags) (context.Context, func(), store.Booking, *hinted, error) {
	ctx, done, err := c.waitContext(fs, w)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	s, h, err := c.bookingSale(fs, spec, w)
	if err != nil {
		done()
		return nil, nil, nil, nil, err
	}
	return ctx, done, s, h, nil
}

// bookingSale opens the sale named by spec for a booking command: a
// ticket file, or a Redis sale, whose requests carry a request id
// (--request-id, else a fresh one) that makes a retry safe. Its errors
// come with hints, as open's do.
func (c *cli) bookingSale(fs *pflag.FlagSet, spec string, w *waitFlags) (store.Booking, *hinted, error) {
	isRedis := redisspec.IsURL(spec)
	id, _ := fs.GetString("request-id")
	if fs.Changed("request-id") {
		if !isRedis {
			return nil, nil, &usageError{"--request-id goes with a Redis sale (--store redis://...): a file's requests need none"}
		}
		if err := redisspec.CheckRequestID(id); err != nil {
			return nil, nil, &usageError{"--request-id: " + err.Error()}
		}
	} else if isRedis {
		id = redisspec.NewRequestID()
	}
	b, err := c.open(spec, store.Options{
		NoWait: w.nowait,
		Warn:   func(note string) { fmt.Fprintf(c.stderr, "ticket %s: note: %s\n", c.name, note) },
	})
	if err != nil {
		return nil, nil, err
	}
	h := b.(*hinted)
	if r, ok := h.Backend.(bookingRequests); ok && isRedis {
		h.requestID = id
		return requested{r, id}, h, nil
	}
	bk, ok := h.Backend.(store.Booking)
	if !ok {
		return nil, nil, fmt.Errorf("%s: this sale does not take ticket %s", printable(spec), c.name)
	}
	return bk, h, nil
}

// bookingRequests is a Redis sale's booking, each request made as a
// request id: a request id answered already gets its first outcome again.
type bookingRequests interface {
	HoldRequest(ctx context.Context, id, buyer string, qty int64, d time.Duration) (store.HoldReceipt, error)
	ConfirmRequest(ctx context.Context, id, hold string) (store.Receipt, error)
	ReleaseRequest(ctx context.Context, id, hold string) (ticket.Record, error)
	ReturnRequest(ctx context.Context, id string, sale, qty int64) (ticket.Record, error)
	RestockRequest(ctx context.Context, id string, delta int64) (ticket.Record, ticket.State, error)
	SetLimitRequest(ctx context.Context, id string, k int64) (ticket.Record, ticket.State, error)
	InitLimit(ctx context.Context, n, limit int64, mode store.Mode) (ticket.State, string, error)
}

// requested is a Redis sale's store.Booking whose requests all carry one
// request id: a command line makes one request.
type requested struct {
	r  bookingRequests
	id string
}

func (q requested) InitLimit(ctx context.Context, n, limit int64, mode store.Mode) (ticket.State, string, error) {
	return q.r.InitLimit(ctx, n, limit, mode)
}
func (q requested) Hold(ctx context.Context, buyer string, qty int64, d time.Duration) (store.HoldReceipt, error) {
	return q.r.HoldRequest(ctx, q.id, buyer, qty, d)
}
func (q requested) Confirm(ctx context.Context, id string) (store.Receipt, error) {
	return q.r.ConfirmRequest(ctx, q.id, id)
}
func (q requested) Release(ctx context.Context, id string) (ticket.Record, error) {
	return q.r.ReleaseRequest(ctx, q.id, id)
}
func (q requested) Return(ctx context.Context, sale, qty int64) (ticket.Record, error) {
	return q.r.ReturnRequest(ctx, q.id, sale, qty)
}
func (q requested) Restock(ctx context.Context, delta int64) (ticket.Record, ticket.State, error) {
	return q.r.RestockRequest(ctx, q.id, delta)
}
func (q requested) SetLimit(ctx context.Context, k int64) (ticket.Record, ticket.State, error) {
	return q.r.SetLimitRequest(ctx, q.id, k)
}

// requestIDFlag adds --request-id, for a Redis sale's booking requests.
func requestIDFlag(fs *pflag.FlagSet) {
	fs.String("request-id", "", "Redis: `ID` names this request; a retry with the same id gets the first outcome and changes nothing more (default: random)")
}

// needBuyer refuses a buy or hold without --buyer in a sale with a
// per-buyer limit (exit 2): the limit is per name, and the default name is
// one per process.
func needBuyer(fs *pflag.FlagSet, b store.Backend) error {
	if fs.Changed("buyer") {
		return nil
	}
	inner := b
	h, ok := b.(*hinted)
	if ok {
		inner = h.Backend
	}
	var limit int64
	if l, ok := inner.(limiter); ok {
		n, err := l.Limit(context.Background())
		if err != nil {
			if h != nil {
				return h.hint(err, "buy")
			}
			return err
		}
		limit = n
	} else {
		st, err := b.Read()
		if err != nil {
			return err
		}
		limit = st.Limit()
	}
	if limit != 0 {
		return &usageError{fmt.Sprintf("--buyer NAME is required: the sale allows at most %d %s a buyer", limit, plural(limit, "ticket", "tickets"))}
	}
	return nil
}

// limiter is a sale that tells its per-buyer limit alone, more cheaply
// than Read (a Redis sale: one HGET, where Read lists the open holds; a
// file: the ticket file, where Read also reads the journal's end).
type limiter interface {
	Limit(ctx context.Context) (int64, error)
}

func runHold(c *cli, args []string) error {
	fs, file := c.flagSet("--for D [--buyer NAME] [--qty K] [--wait D | --nowait] [--request-id ID] [--json] [flags]", `
Hold K tickets for D: take them out of the tickets left into held, all or
nothing, and print the hold's id, which ticket confirm HOLD turns into a
sale and ticket release HOLD gives back. A hold not confirmed in time
lapses: whoever next takes the lock (or reads: show, verify, watch) counts
its tickets back in stock, and the next writer records the release. No
process has to run meanwhile.

In a sale with a per-buyer limit (ticket init --limit K), --buyer is
required, and a hold that would give the buyer more than the limit (bought
and not returned, plus held) is refused.

On a Redis sale the hold lasts D by the server's clock, and --request-id ID
makes a retry safe: the same id gets the same hold again.`,
		exitNote{exitOK, "held; the hold's id is on stdout"},
		exitNote{exitError, ""},
		exitNote{exitUsage, "bad flags, --for missing or 0, or no --buyer in a sale with a per-buyer limit"},
		exitNote{exitSoldOut, "fewer than K left; nothing held"},
		exitNote{exitLocked, "the lock was not acquired within --wait (or at once, with --nowait); nothing held"},
		exitNote{exitInvalid, ""},
		exitNote{exitUnconfirmed, "recorded in the journal, but not confirmed durable or not reported: check with ticket show --sales"},
		exitNote{exitUnreachable, "Redis: not reached, nothing changed; or the answer was lost (the message says so): the same command with the same --request-id tells, and never acts twice"},
		exitNote{exitLimit, "the buyer would have more than the sale's per-buyer limit; nothing held"},
		signalExits[0], signalExits[1], signalExits[2])
	buyer := fs.String("buyer", "", "who holds: `NAME` as recorded in the journal (default pid<PID>; required under a limit)")
	qty := wholeFlag(fs, "qty", 1, 1, math.MaxInt64, "hold `K` tickets, all or nothing")
	var d seconds
	fs.Var(&d, "for", "how long the hold lasts (10m, 90s, 2.5): required, more than 0")
	var wait waitFlags
	wait.add(fs, "lock")
	requestIDFlag(fs)
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if !fs.Changed("for") || d == 0 {
		return &usageError{"--for D is required and must be more than 0 (10m, 90s, 2.5) (see ticket hold -h)"}
	}
	if !fs.Changed("buyer") {
		*buyer = fmt.Sprintf("pid%d", os.Getpid())
	}
	if err := ticket.CheckBuyer(*buyer); err != nil {
		return &usageError{"--buyer: " + err.Error()}
	}
	ctx, done, s, h, err := c.openBooking(fs, *file, &wait)
	if err != nil {
		return err
	}
	defer done()
	if err := needBuyer(fs, h); err != nil {
		return err
	}
	r, err := s.Hold(ctx, *buyer, *qty, time.Duration(d))
	if err != nil {
		return h.hint(err, "buy")
	}
	if c.json {
		return c.result(struct {
			File    string    `json:"file"`
			Hold    string    `json:"hold"`
			Buyer   string    `json:"buyer"`
			Qty     int64     `json:"qty"`
			Expires time.Time `json:"expires"`
			Seq     int64     `json:"seq"`
			Left    int64     `json:"left"`
			Held    int64     `json:"held"`
		}{printable(*file), r.Hold.Hold, *buyer, *qty, r.Hold.Expires, r.Hold.Seq, r.State.Left(), r.State.Held()})
	}
	fmt.Fprintf(c.stderr, "ticket hold: %s holds %d %s until %s (%d left)\n", *buyer, *qty, plural(*qty, "ticket", "tickets"), r.Hold.Expires.Format(time.RFC3339), r.State.Left())
	return c.line("%s", r.Hold.Hold)
}

func runConfirm(c *cli, args []string) error {
	fs, file := c.flagSet("HOLD [--wait D | --nowait] [--request-id ID] [--json] [flags]", `
Turn the hold HOLD (its id, as ticket hold printed it) into a sale: a
journal record naming the hold, committed as a buy is. Confirming a hold
again reports its first confirm and sells nothing more.`,
		exitNote{exitOK, "confirmed (now, or by an earlier confirm of the same hold)"},
		exitNote{exitError, "no such hold in this sale, or any other error"},
		exitNote{exitUsage, ""},
		exitNote{exitLocked, "the lock was not acquired within --wait (or at once, with --nowait); nothing changed"},
		exitNote{exitInvalid, ""},
		exitNote{exitUnconfirmed, "the sale is recorded, but not confirmed durable or not reported: check with ticket show --sales"},
		exitNote{exitUnreachable, "Redis: not reached, nothing changed; or the answer was lost (the message says so): the same command with the same --request-id tells, and never acts twice"},
		exitNote{exitLapsed, "the hold lapsed or was released: its tickets are back in stock, and a script may hold again"},
		signalExits[0], signalExits[1], signalExits[2])
	var wait waitFlags
	wait.add(fs, "lock")
	requestIDFlag(fs)
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	rest, err := c.parse(fs, args, 1)
	if err != nil {
		return err
	}
	ctx, done, s, h, err := c.openBooking(fs, *file, &wait)
	if err != nil {
		return err
	}
	defer done()
	r, err := s.Confirm(ctx, rest[0])
	if err != nil && r.Sale.Seq == 0 {
		return h.hint(err, "buy")
	}
	if c.json {
		if werr := c.result(struct {
			File  string `json:"file"`
			Hold  string `json:"hold"`
			Buyer string `json:"buyer"`
			Qty   int64  `json:"qty"`
			Seq   int64  `json:"seq"`
			Left  int64  `json:"left"`
		}{printable(*file), rest[0], r.Sale.Buyer, r.Sale.Qty, r.Sale.Seq, r.State.Left()}); werr != nil {
			return &reportError{werr}
		}
	} else if werr := c.line("%s got %d %s: hold %s is sale #%d", r.Sale.Buyer, r.Sale.Qty, plural(r.Sale.Qty, "ticket", "tickets"), rest[0], r.Sale.Seq); werr != nil {
		return &reportError{werr}
	}
	return err // committed; perhaps not confirmed durable
}

func runRelease(c *cli, args []string) error {
	fs, file := c.flagSet("HOLD [--wait D | --nowait] [--request-id ID] [--json] [flags]", `
Give the tickets of the hold HOLD back to the stock at once, before it
lapses.`,
		exitNote{exitOK, "released"},
		exitNote{exitError, "no such hold in this sale, or it was confirmed (ticket return gives a sale back), or any other error"},
		exitNote{exitUsage, ""},
		exitNote{exitLocked, "the lock was not acquired within --wait (or at once, with --nowait); nothing changed"},
		exitNote{exitInvalid, ""},
		exitNote{exitUnconfirmed, "recorded in the journal, but not confirmed durable or not reported: check with ticket show --sales"},
		exitNote{exitUnreachable, "Redis: not reached, nothing changed; or the answer was lost (the message says so): the same command with the same --request-id tells, and never acts twice"},
		exitNote{exitLapsed, "the hold had lapsed or was released already"},
		signalExits[0], signalExits[1], signalExits[2])
	var wait waitFlags
	wait.add(fs, "lock")
	requestIDFlag(fs)
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	rest, err := c.parse(fs, args, 1)
	if err != nil {
		return err
	}
	ctx, done, s, h, err := c.openBooking(fs, *file, &wait)
	if err != nil {
		return err
	}
	defer done()
	r, err := s.Release(ctx, rest[0])
	if errors.Is(err, store.ErrConfirmed) {
		err = fmt.Errorf("%w (give its tickets back with ticket return SALE)", err)
	}
	if err != nil {
		return h.hint(err, "buy")
	}
	if c.json {
		return c.result(struct {
			File     string `json:"file"`
			Hold     string `json:"hold"`
			Released int64  `json:"released"`
			Seq      int64  `json:"seq"`
			Left     int64  `json:"left"`
		}{printable(*file), rest[0], r.Qty, r.Seq, r.Left})
	}
	return c.line("released hold %s: %d %s back (%d left)", rest[0], r.Qty, plural(r.Qty, "ticket", "tickets"), r.Left)
}

func runReturn(c *cli, args []string) error {
	fs, file := c.flagSet("SALE [--qty K] [--wait D | --nowait] [--request-id ID] [--json] [flags]", `
Give back K tickets (default: all it still has) of the committed sale
number SALE (as ticket buy --json or ticket show --sales numbers it; a
confirmed hold is a sale too). A return is a journal record naming the
sale; never more than the sale still has is returned.`,
		exitNote{exitOK, "returned"},
		exitNote{exitError, "no such sale, fewer than K tickets left in it, or any other error"},
		exitNote{exitUsage, ""},
		exitNote{exitLocked, "the lock was not acquired within --wait (or at once, with --nowait); nothing changed"},
		exitNote{exitInvalid, ""},
		exitNote{exitUnconfirmed, "recorded in the journal, but not confirmed durable or not reported: check with ticket show --sales"},
		exitNote{exitUnreachable, "Redis: not reached, nothing changed; or the answer was lost (the message says so): the same command with the same --request-id tells, and never acts twice"},
		signalExits[0], signalExits[1], signalExits[2])
	qty := wholeFlag(fs, "qty", 0, 1, math.MaxInt64, "return `K` tickets (default: all the sale still has)")
	var wait waitFlags
	wait.add(fs, "lock")
	requestIDFlag(fs)
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	rest, err := c.parse(fs, args, 1)
	if err != nil {
		return err
	}
	sale, err := parseWhole(rest[0], 1, math.MaxInt64)
	if err != nil {
		return &usageError{"SALE: " + err.Error()}
	}
	ctx, done, s, h, err := c.openBooking(fs, *file, &wait)
	if err != nil {
		return err
	}
	defer done()
	r, err := s.Return(ctx, sale, *qty)
	if err != nil {
		return h.hint(err, "buy")
	}
	if c.json {
		return c.result(struct {
			File     string `json:"file"`
			Sale     int64  `json:"sale"`
			Buyer    string `json:"buyer"`
			Returned int64  `json:"returned"`
			Seq      int64  `json:"seq"`
			Left     int64  `json:"left"`
		}{printable(*file), sale, r.Buyer, r.Qty, r.Seq, r.Left})
	}
	return c.line("%s returned %d %s of sale #%d (%d left)", r.Buyer, r.Qty, plural(r.Qty, "ticket", "tickets"), sale, r.Left)
}

func runRestock(c *cli, args []string) error {
	fs, file := c.flagSet("--add N | --remove N | --limit K [--wait D | --nowait] [--request-id ID] [--json] [flags]", `
Change the stock: --add N adds N tickets (the total grows), --remove N takes
N of those left out of the sale (the total falls; never below none left).
--limit K changes the per-buyer limit of a sale started with one (ticket
init --limit), never below what a buyer already has. Each is a journal
record.`,
		exitNote{exitOK, "done"},
		exitNote{exitError, "the sale was started without a limit (--limit), or any other error"},
		exitNote{exitUsage, "bad flags, or not exactly one of --add, --remove and --limit"},
		exitNote{exitSoldOut, "fewer than N left to remove; nothing removed"},
		exitNote{exitLocked, "the lock was not acquired within --wait (or at once, with --nowait); nothing changed"},
		exitNote{exitInvalid, ""},
		exitNote{exitUnconfirmed, "recorded in the journal, but not confirmed durable or not reported: check with ticket show --sales"},
		exitNote{exitUnreachable, "Redis: not reached, nothing changed; or the answer was lost (the message says so): the same command with the same --request-id tells, and never acts twice"},
		exitNote{exitLimit, "a buyer already has more than K; the limit is unchanged"},
		signalExits[0], signalExits[1], signalExits[2])
	add := wholeFlag(fs, "add", 0, 1, math.MaxInt64, "add `N` tickets")
	remove := wholeFlag(fs, "remove", 0, 1, math.MaxInt64, "take `N` of the tickets left out of the sale")
	limit := wholeFlag(fs, "limit", 0, 1, math.MaxInt64, "the new per-buyer limit: `K` tickets")
	var wait waitFlags
	wait.add(fs, "lock")
	requestIDFlag(fs)
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	n := 0
	for _, f := range []string{"add", "remove", "limit"} {
		if fs.Changed(f) {
			n++
		}
	}
	if n != 1 {
		return &usageError{"give one of --add N, --remove N and --limit K (see ticket restock -h)"}
	}
	ctx, done, s, h, err := c.openBooking(fs, *file, &wait)
	if err != nil {
		return err
	}
	defer done()
	var r ticket.Record
	var st ticket.State
	switch {
	case fs.Changed("limit"):
		r, st, err = s.SetLimit(ctx, *limit)
	case fs.Changed("add"):
		r, st, err = s.Restock(ctx, *add)
	default:
		r, st, err = s.Restock(ctx, -*remove)
	}
	if err != nil {
		return h.hint(err, "buy")
	}
	if c.json {
		return c.result(struct {
			File  string `json:"file"`
			Seq   int64  `json:"seq"`
			Left  int64  `json:"left"`
			Total int64  `json:"total"`
			Limit int64  `json:"limit,omitempty"`
		}{printable(*file), r.Seq, st.Left(), st.Total(), st.Limit()})
	}
	return c.line("#%d %s: %s", r.Seq, r.Describe(), st)
}
