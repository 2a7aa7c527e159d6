package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redisspec"
	"github.com/ticketd/ticket/ticket"
)

func runBench(c *cli, args []string) error {
	fs, file := c.flagSet("[--procs P] [--tickets N] [--limit K] [--hold D] [--no-sync] [--force] [--json] [-f PATH | --store SPEC]", `
Measure buys per second on this disk: P independent buyer processes (this
binary, re-executed) loop "lock, read, take one, commit" until N tickets are
sold from a fresh ticket file, all released at the same moment. Prints the
rate, per-buy latency percentiles, CPU time per buy, and verifies the books.

Without -f or --store it works in a new directory under the current one
(the disk you are sizing) and removes it afterwards; it never takes the
sale from $TICKET_FILE or $TICKET_STORE. With -f or --store it creates the
sale there, and refuses an existing one unless --force. To measure a Redis
sale, name one you can spare: --store redis://HOST:PORT/DB?name=SALE.

Two variants measure the booking (ticket files only, for now), and the
output names the one measured:

  --limit K  the sale is created with a per-buyer limit of K (ticket init
             --limit) and every worker buys under its own buyer name, so the
             limit is checked on every buy. K must be at least N, since one
             worker may buy them all: the limit is checked, never reached
             (a buy when none are left is sold out, whatever the limit).
  --hold D   every operation is a hold of one ticket for D followed by its
             confirm ("lock, read, hold, commit", then the same to confirm).
             It prints buys completed (holds confirmed) per second and holds
             plus confirms per second; latency is that of a hold and its
             confirm. D must outlast a hold's confirm (10s is plenty): a hold
             that lapses first is counted, and its ticket may be left unsold.

The two may be combined.`,
		exitNote{exitOK, "measured, and the books balance"},
		exitNote{exitError, "the sale exists (without --force), or any other error"},
		exitNote{exitUsage, "bad flags; --limit not above --tickets, --hold 0, --limit or --hold on a Redis sale"},
		exitNote{exitInvalid, "the books do not balance"},
		exitNote{exitUnreachable, ""},
		signalExits[0], signalExits[1], signalExits[2])
	fs.Lookup("file").Usage = "the ticket file `PATH` to create (default: one in a new directory under the current one, removed afterwards)"
	fs.Lookup("store").Usage = "the sale to create: `SPEC` is PATH, file:PATH or redis://HOST:PORT/DB?name=SALE (default: as -f)"
	procs := wholeFlag(fs, "procs", 4, 0, 10000, "start `P` buyer processes")
	tickets := wholeFlag(fs, "tickets", 5000, 0, math.MaxInt64, "sell `N` tickets")
	noSync := fs.Bool("no-sync", false, "skip fsync (not durable): to see what durability costs")
	force := fs.Bool("force", false, "with -f: replace an existing ticket file")
	limit := wholeFlag(fs, "limit", 0, 1, math.MaxInt64, "create the sale with a per-buyer limit of `K` (at least N) and buy under one buyer name per worker")
	var hold seconds
	fs.Var(&hold, "hold", "each operation holds one ticket for `D`, then confirms it")
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	switch {
	case *procs < 1 || *tickets < 1:
		return &usageError{"--procs and --tickets must be at least 1"}
	case fs.Changed("limit") && *limit < *tickets:
		return &usageError{fmt.Sprintf("--limit %d is below --tickets %d: one worker may buy them all, and the limit must be checked, never reached; give K >= N", *limit, *tickets)}
	case fs.Changed("hold") && hold <= 0:
		return &usageError{"--hold D must be more than 0 (10s, 1m)"}
	case (fs.Changed("limit") || fs.Changed("hold")) && redisspec.IsURL(*file):
		return &usageError{fmt.Sprintf("--limit and --hold measure the booking on ticket files only, not on the Redis sale %s", printable(*file))}
	}
	v := benchVariant{limit: *limit, hold: time.Duration(hold)}
	path := *file
	if !specChanged(fs) {
		for _, env := range []string{"TICKET_STORE", "TICKET_FILE"} {
			if v := os.Getenv(env); v != "" {
				fmt.Fprintf(c.stderr, "ticket bench: note: $%s (%s) is not used: bench measures a new ticket file under the current directory; to measure that sale, name it with --store (bench creates it: name one you can spare)\n", env, printable(v))
				break
			}
		}
		dir, err := os.MkdirTemp(".", "ticket-bench-")
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "ticket.json")
	}
	ctx, stop := c.interruptible()
	defer stop()
	s, err := c.open(path, store.Options{NoSync: *noSync})
	if err != nil {
		return err
	}
	defer s.Close()
	if v.limit > 0 {
		fsale, ok := fileStore(s)
		if !ok {
			return fmt.Errorf("bench: %s is not a ticket file", printable(path))
		}
		_, _, err = fsale.InitLimit(ctx, *tickets, v.limit, mode(*force))
	} else {
		_, _, err = s.Init(ctx, *tickets, mode(*force))
	}
	if err != nil {
		return err
	}
	c.durability(s, false)
	res, err := benchRun(ctx, path, int(*procs), *noSync, v)
	if err != nil {
		return err
	}
	report, err := s.Verify(ctx)
	if err != nil {
		return err
	}
	if v.hold > 0 {
		// Every buy is a confirmed hold; a hold that lapsed first left its
		// ticket in stock, perhaps unsold.
		sold := report.Tickets + report.Booked.Confirmed
		res.Balanced = report.Balanced() && report.Tickets == 0 && report.Booked.Confirmed == res.Buys &&
			sold+report.State.Left() == *tickets && report.State.Held() == 0
	} else {
		res.Balanced = report.Balanced() && report.Tickets == *tickets && report.State.Left() == 0
	}
	res.Procs, res.Tickets, res.Durable = int(*procs), *tickets, !*noSync
	res.Variant, res.Limit, res.HoldSeconds = v.name(), v.limit, v.hold.Seconds()
	if c.json {
		err = c.result(res)
	} else {
		mode := "durable"
		switch {
		case redisspec.IsURL(path):
			mode = "redis: durable as the server's persistence allows"
		case *noSync:
			mode = "no fsync"
		}
		procs := plural(int64(res.Procs), "process", "processes")
		lat := fmt.Sprintf("latency p50 %s p99 %s; CPU %s per buy; books balance: %v", time.Duration(res.P50ns), time.Duration(res.P99ns), time.Duration(res.CPUPerBuyNs), res.Balanced)
		limited := ""
		if v.limit > 0 {
			limited = fmt.Sprintf(", under a limit of %d a buyer, checked on every %s", v.limit, map[bool]string{false: "buy", true: "hold"}[v.hold > 0])
		}
		switch {
		case v.hold > 0:
			err = c.line("%.0f buys/s, %.0f holds+confirms/s  (%s: %d holds for %s confirmed by %d %s in %.3fs, %d lapsed first%s, %s; a hold and its confirm: %s)",
				res.BuysPerSec, res.OpsPerSec, v.flags(), res.Buys, v.hold, res.Procs, procs, res.WallSeconds, res.Lapsed, limited, mode, lat)
		case v.limit > 0:
			err = c.line("%.0f buys/s  (%s: %d buys by %d %s, each its own buyer%s, in %.3fs, %s; %s)",
				res.BuysPerSec, v.flags(), res.Buys, res.Procs, procs, limited, res.WallSeconds, mode, lat)
		default:
			err = c.line("%.0f buys/s  (%d buys by %d %s in %.3fs, %s; %s)",
				res.BuysPerSec, res.Buys, res.Procs, procs, res.WallSeconds, mode, lat)
		}
	}
	if err != nil {
		return err
	}
	if !res.Balanced {
		return shown{fmt.Errorf("bench: the books do not balance: %v: %w", report.Problems, ticket.ErrInvalid)}
	}
	return nil
}

// benchVariant is what bench measures: plain buys, buys under a limit,
// holds then confirms.
type benchVariant struct {
	limit int64         // the sale's per-buyer limit; 0 for none
	hold  time.Duration // every operation a hold for this long, then its confirm; 0 for buys
}

// name names the variant: "buy", "limit", "hold" or "hold+limit".
func (v benchVariant) name() string {
	switch {
	case v.hold > 0 && v.limit > 0:
		return "hold+limit"
	case v.hold > 0:
		return "hold"
	case v.limit > 0:
		return "limit"
	}
	return "buy"
}

// flags is the variant as bench's flags.
func (v benchVariant) flags() string {
	var f []string
	if v.limit > 0 {
		f = append(f, fmt.Sprintf("--limit %d", v.limit))
	}
	if v.hold > 0 {
		f = append(f, "--hold "+v.hold.String())
	}
	return strings.Join(f, " ")
}

// op is the variant as a bench worker's argument: "buy" or "hold=D".
func (v benchVariant) op() string {
	if v.hold > 0 {
		return "hold=" + v.hold.String()
	}
	return "buy"
}

// benchResult is what bench measured; its JSON names are stable.
type benchResult struct {
	Variant     string  `json:"variant"`                // "buy", "limit", "hold" or "hold+limit"
	Limit       int64   `json:"limit,omitempty"`        // --limit
	HoldSeconds float64 `json:"hold_seconds,omitempty"` // --hold
	Procs       int     `json:"procs"`
	Tickets     int64   `json:"tickets"`
	Durable     bool    `json:"durable"`
	Buys        int64   `json:"buys"`
	WallSeconds float64 `json:"wall_seconds"`
	BuysPerSec  float64 `json:"buys_per_sec"`          // buys completed (--hold: holds confirmed) per second
	OpsPerSec   float64 `json:"ops_per_sec,omitempty"` // --hold: holds and confirms per second
	Lapsed      int64   `json:"lapsed,omitempty"`      // --hold: holds that lapsed before their confirm
	P50ns       int64   `json:"p50_ns"`
	P99ns       int64   `json:"p99_ns"`
	CPUPerBuyNs int64   `json:"cpu_per_buy_ns"`
	Balanced    bool    `json:"balanced"`
}

// workerReport is what one bench worker prints when the tickets are gone.
type workerReport struct {
	Buys      int64   `json:"buys"`
	Ops       int64   `json:"ops"`    // requests made that changed the sale: buys, or holds and confirms
	Lapsed    int64   `json:"lapsed"` // --hold: holds that lapsed before their confirm
	Latencies []int64 `json:"latencies_ns"`
}

// benchRun starts procs workers (this program as gated children: see
// child.go), opens the gate when all are there, and collects their
// reports.
func benchRun(ctx context.Context, path string, procs int, noSync bool, v benchVariant) (benchResult, error) {
	g, err := newGate()
	if err != nil {
		return benchResult{}, fmt.Errorf("bench: %w", err)
	}
	type worker struct {
		cmd *exec.Cmd
		out io.ReadCloser
	}
	workers := make([]worker, 0, procs)
	defer func() {
		for _, w := range workers {
			if w.cmd.ProcessState == nil {
				_ = w.cmd.Process.Kill()
				_ = w.cmd.Wait()
			}
		}
	}()
	sync := map[bool]string{false: "sync", true: "nosync"}[noSync]
	for i := range procs {
		cmd := g.command("bench", path, "bench"+strconv.Itoa(i), sync, v.op())
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			g.close()
			return benchResult{}, fmt.Errorf("bench: start worker: %w", err)
		}
		workers = append(workers, worker{cmd, out})
	}
	ready, start, err := g.open()
	if err != nil {
		return benchResult{}, fmt.Errorf("bench: %w", err)
	}
	if ready < int64(procs) {
		return benchResult{}, errors.New("bench: a worker died before it was ready")
	}
	var res benchResult
	var lat []int64
	var ops int64
	var cpu time.Duration
	for _, w := range workers {
		var rep workerReport
		if err := json.NewDecoder(w.out).Decode(&rep); err != nil {
			return benchResult{}, fmt.Errorf("bench: read a worker's report: %w", err)
		}
		if err := w.cmd.Wait(); err != nil {
			return benchResult{}, fmt.Errorf("bench: worker: %w", err)
		}
		if ru, ok := w.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		res.Buys += rep.Buys
		res.Lapsed += rep.Lapsed
		ops += rep.Ops
		lat = append(lat, rep.Latencies...)
	}
	wall := time.Since(start)
	if err := ctx.Err(); err != nil {
		return benchResult{}, err
	}
	res.WallSeconds = wall.Seconds()
	res.BuysPerSec = float64(res.Buys) / wall.Seconds()
	if v.hold > 0 {
		res.OpsPerSec = float64(ops) / wall.Seconds()
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50ns = lat[len(lat)/2]
		res.P99ns = lat[len(lat)*99/100]
	}
	if res.Buys > 0 {
		res.CPUPerBuyNs = int64(cpu) / res.Buys
	}
	return res, nil
}

// benchWorker is one bench buyer, started past the gate with the ticket
// file, its buyer's name, "sync" or "nosync", and "buy" or "hold=D" (see
// child.go): it buys one ticket at a time (or holds one for D and
// confirms it) until sold out, and prints its report.
func benchWorker(c *cli, args []string) error {
	if len(args) != 4 {
		return &usageError{fmt.Sprintf("a bench worker takes the ticket file, a buyer, sync or nosync, and buy or hold=D, not %q", args)}
	}
	path, buyer, noSync := args[0], args[1], args[2] == "nosync"
	var hold time.Duration
	if d, ok := strings.CutPrefix(args[3], "hold="); ok {
		var err error
		if hold, err = time.ParseDuration(d); err != nil || hold <= 0 {
			return &usageError{fmt.Sprintf("a bench worker's hold: %q is not a duration above 0", d)}
		}
	}
	s, err := c.open(path, store.Options{NoSync: noSync})
	if err != nil {
		return err
	}
	defer s.Close()
	rep := workerReport{Latencies: make([]int64, 0, 1024)}
	ctx := context.Background()
	buy := func() error {
		_, err := s.Buy(ctx, buyer, 1)
		rep.Ops++
		return err
	}
	if hold > 0 {
		fsale, ok := fileStore(s)
		if !ok {
			return fmt.Errorf("bench: %s is not a ticket file", printable(path))
		}
		buy = func() error {
			for {
				h, err := fsale.Hold(ctx, buyer, 1, hold)
				rep.Ops++
				if err != nil {
					return err
				}
				_, err = fsale.Confirm(ctx, h.Hold.Hold)
				rep.Ops++
				if !errors.Is(err, ticket.ErrHoldLapsed) {
					return err
				}
				rep.Lapsed++ // its ticket is back: hold again
			}
		}
	}
	for {
		t0 := time.Now()
		err := buy()
		if errors.Is(err, ticket.ErrSoldOut) {
			rep.Ops-- // refused: changed nothing
			break
		}
		if err != nil {
			return err
		}
		rep.Latencies = append(rep.Latencies, int64(time.Since(t0)))
		rep.Buys++
	}
	return c.result(rep)
}
