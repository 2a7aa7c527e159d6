package cli

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redisspec"
	"github.com/ticketd/ticket/ticket"
)

func runBuy(c *cli, args []string) error {
	fs, file := c.flagSet("[--buyer NAME] [--qty K] [--wait D | --nowait] [--peek] [--request-id ID] [--no-sync] [--json] [flags]", `
Buy K tickets: take the lock (PATH.lock), re-read the ticket file under it,
and take K tickets only if K are left, all or nothing. The sale is appended
to the journal and fsynced (that makes it durable), and the ticket file is
replaced atomically, before "got" is printed and the exit status is 0.
Buyers that find the lock held are committed together by its next holder,
one fsync for the whole batch, each with its own answer (group commit).

Without --wait it waits for the lock as long as it takes, like flock(1).
SIGINT, SIGTERM or SIGHUP while waiting exits 130, 143 or 129 with nothing
changed; once the lock is held the buy completes and is reported as usual.

With --peek it first reads the tickets left without the lock, as a careless
buyer would, and says so on stderr ("person3 sees 5 left"; with --json also
as "seen" in the result). That count is only a glimpse: the buy itself
re-reads the file under the lock and decides on what it finds there.

With --store redis://... there is no lock: one script on the server checks
and takes the tickets and appends the sale to the journal (a stream) in one
atomic step, and --wait/--nowait have nothing to wait for (the URL's
dial_timeout and read_timeout bound the call). Each buy carries a request
id (--request-id, else a random one): a buy retried with the same id, buyer
and quantity within 24 hours gets the original outcome and buys nothing
more; --buyer defaults to the request id, so that a retry repeats it. Exit 7
says whether anything may have been bought: "nothing was bought" (the buy
never ran), or "outcome unknown" with the whole command that retries it
(with --json: "outcome", "request_id", "buyer", "qty" and "retry"). SIGINT,
SIGTERM or SIGHUP always ends a buy: before it was sent, exit 130, 143 or
129; after, exit 7, outcome unknown. With wait_replicas=N in the URL a sale is
acknowledged once N replicas have it; exit 6 if they did not confirm it.`,
		exitNote{exitOK, "bought"},
		exitNote{exitError, ""},
		exitNote{exitUsage, "bad flags, or no --buyer in a sale started with ticket init --limit"},
		exitNote{exitSoldOut, "fewer than K left; nothing bought"},
		exitNote{exitLocked, "the lock was not acquired within --wait (or at once, with --nowait); nothing bought"},
		exitNote{exitInvalid, ""},
		exitNote{exitUnconfirmed, "the sale is recorded, but not confirmed durable or not reported: check with ticket show --sales"},
		exitNote{exitUnreachable, "Redis could not be reached or timed out; the message says whether anything may have been bought"},
		exitNote{exitLimit, "the buyer would have more than the sale's per-buyer limit (ticket init --limit); nothing bought"},
		signalExits[0], signalExits[1], signalExits[2])
	buyer := fs.String("buyer", "", "who is buying: `NAME` as recorded in the journal (default pid<PID>, unique per process; Redis: the request id)")
	qty := wholeFlag(fs, "qty", 1, 0, math.MaxInt64, "buy `K` tickets, all or nothing")
	var wait waitFlags
	wait.add(fs, "lock")
	noSync := fs.Bool("no-sync", false, "skip fsync: faster, not durable across a machine crash")
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	unlocked := fs.Bool("unsafe-no-lock", false, "UNSAFE: skip the lock and the journal (only to show what the lock prevents)")
	_ = fs.MarkHidden("unsafe-no-lock")
	requestID := fs.String("request-id", "", "Redis: `ID` names this buy; a retry with the same id gets the original outcome (default: random)")
	peek := fs.Bool("peek", false, "first report the tickets left as seen without the lock (stderr; \"seen\" with --json)")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	isRedis := redisspec.IsURL(*file)
	if fs.Changed("request-id") {
		if !isRedis {
			return &usageError{"--request-id goes with a Redis sale (--store redis://...): a file's buys need none"}
		}
		if err := redisspec.CheckRequestID(*requestID); err != nil {
			return &usageError{"--request-id: " + err.Error()}
		}
	} else if isRedis {
		*requestID = redisspec.NewRequestID()
	}
	if !fs.Changed("buyer") {
		*buyer = fmt.Sprintf("pid%d", os.Getpid())
		if isRedis {
			// A retry with the same --request-id names the same buyer.
			*buyer = *requestID
		}
	}
	if *qty < 1 {
		return &usageError{fmt.Sprintf("--qty %d: buy at least 1 ticket", *qty)}
	}
	if err := ticket.CheckBuyer(*buyer); err != nil {
		return &usageError{"--buyer: " + err.Error()}
	}
	c.extra.RequestID = *requestID
	// A reader that went away must not kill us with SIGPIPE after the sale:
	// the write fails instead, and the exit status says the sale stands.
	signal.Ignore(syscall.SIGPIPE)
	ctx, done, err := c.saleContext(fs, &wait, *file, "interrupted before the buy was sent: nothing was bought")
	if err != nil {
		return err
	}
	defer done()
	s, err := c.open(*file, store.Options{
		NoSync: *noSync,
		NoWait: wait.nowait,
		Warn:   func(note string) { fmt.Fprintf(c.stderr, "ticket buy: note: %s\n", note) },
	})
	if err != nil {
		return err
	}
	defer s.Close()
	if !*unlocked {
		if err := needBuyer(fs, s); err != nil {
			return err
		}
	}
	if *peek {
		st, err := s.Read()
		if err != nil {
			return err
		}
		left := st.Left()
		c.extra.Seen = &left
		fmt.Fprintf(c.stderr, "%s sees %d left\n", *buyer, left)
	}
	var r store.Receipt
	switch rs, _ := redisOf(s); {
	case *unlocked:
		r, err = unsafeBuy(ctx, s, *buyer, *qty, *noSync)
	case rs != nil:
		r, err = rs.BuyRequest(ctx, *requestID, *buyer, *qty)
		err = s.(*hinted).hint(err, "buy")
	default:
		r, err = s.Buy(ctx, *buyer, *qty)
	}
	if err != nil && r.Sale.Seq == 0 && isRedis && !errors.Is(err, ticket.ErrSoldOut) {
		return c.redisBuyFailed(err, s, *buyer, *qty, *requestID)
	}
	if r.Replayed {
		c.extra.Replayed = true
		fmt.Fprintf(c.stderr, "ticket buy: request id %s was already answered: this is its original outcome\n", *requestID)
	}
	switch {
	case errors.Is(err, ticket.ErrSoldOut):
		if werr := c.reportBuy(*file, *buyer, *qty, r, false); werr != nil {
			return werr
		}
		return shown{err}
	case err != nil && r.Sale.Seq == 0:
		return err
	}
	// The sale is committed. From here on, every failure is exit 6.
	if werr := c.reportBuy(*file, *buyer, *qty, r, true); werr != nil {
		return &reportError{werr}
	}
	if err != nil { // committed, durability not confirmed
		return err
	}
	return nil
}

// redisBuyFailed reports a Redis buy that made no sale, or whose outcome
// is unknown: with --json, as an error object that also says whether
// anything may have been bought and, if so, the command that retries it.
func (c *cli) redisBuyFailed(err error, s store.Backend, buyer string, qty int64, id string) error {
	if !c.json {
		return err
	}
	code := exitCode(err, int(c.signal.Load()))
	msg := err.Error()
	if code == exitSIGINT || code == exitSIGTERM {
		msg = c.interrupted
	}
	out := struct {
		Error     string `json:"error"`
		ExitCode  int    `json:"exit_code"`
		Outcome   string `json:"outcome"` // "unknown": the buy may have been made; "not_bought"
		RequestID string `json:"request_id"`
		Buyer     string `json:"buyer"`
		Qty       int64  `json:"qty"`
		Retry     string `json:"retry,omitempty"` // the command that learns the outcome
		// PasswordEnv names the environment variable retry needs the
		// password in: the URL printed leaves it out.
		PasswordEnv string `json:"password_env,omitempty"`
	}{Error: msg, ExitCode: code, Outcome: "not_bought", RequestID: id, Buyer: buyer, Qty: qty}
	var unknown *redisspec.OutcomeUnknownError
	if errors.As(err, &unknown) {
		out.Outcome = "unknown"
		if r, ok := redisOf(s); ok {
			out.Retry = retryCommand(r, buyer, strconv.FormatInt(qty, 10), id)
			if r.HasPassword() {
				out.PasswordEnv = redisspec.PasswordEnv
			}
		}
	}
	_ = c.result(out)
	return err
}

// reportBuy prints the outcome of a buy on stdout.
func (c *cli) reportBuy(file, buyer string, qty int64, r store.Receipt, bought bool) error {
	if c.json {
		out := struct {
			File   string `json:"file"`
			Buyer  string `json:"buyer"`
			Qty    int64  `json:"qty"`
			Bought bool   `json:"bought"`
			Left   int64  `json:"left"`
			Seq    int64  `json:"seq,omitempty"`
			buyExtra
		}{printable(file), buyer, qty, bought, r.State.Left(), r.Sale.Seq, c.extra}
		return c.result(out)
	}
	switch {
	case bought:
		return c.line("%s got %d %s (%d left)", buyer, qty, plural(qty, "ticket", "tickets"), r.State.Left())
	case r.State.Left() == 0:
		return c.line("%s got no ticket: sold out", buyer)
	default:
		return c.line("%s got no tickets: %d left, wanted %d", buyer, r.State.Left(), qty)
	}
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// buyExtra is what --peek, the gate of a rush's buyer (see child.go) and a
// Redis sale add to buy's JSON result.
type buyExtra struct {
	Seen     *int64 `json:"seen,omitempty"`     // tickets left as seen without the lock (--peek)
	Released int64  `json:"released,omitempty"` // when the gate opened, Unix nanoseconds (a rush's buyer)

	RequestID string `json:"request_id,omitempty"` // the buy's request id (Redis)
	Replayed  bool   `json:"replayed,omitempty"`   // the request id was already answered: its original outcome
}
