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
	"syscall"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redisspec"
	"github.com/ticketd/ticket/ticket"
)

func runBench(c *cli, args []string) error {
	fs, file := c.flagSet("[--procs P] [--tickets N] [--no-sync] [--force] [--json] [-f PATH | --store SPEC]", `
Measure buys per second on this disk: P independent buyer processes (this
binary, re-executed) loop "lock, read, take one, commit" until N tickets are
sold from a fresh ticket file, all released at the same moment. Prints the
rate, per-buy latency percentiles, CPU time per buy, and verifies the books.

Without -f or --store it works in a new directory under the current one
(the disk you are sizing) and removes it afterwards; it never takes the
sale from $TICKET_FILE or $TICKET_STORE. With -f or --store it creates the
sale there, and refuses an existing one unless --force. To measure a Redis
sale, name one you can spare: --store redis://HOST:PORT/DB?name=SALE.`,
		exitNote{exitOK, "measured, and the books balance"},
		exitNote{exitError, "the sale exists (without --force), or any other error"},
		exitNote{exitUsage, ""},
		exitNote{exitInvalid, "the books do not balance"},
		exitNote{exitUnreachable, ""},
		signalExits[0], signalExits[1], signalExits[2])
	fs.Lookup("file").Usage = "the ticket file `PATH` to create (default: one in a new directory under the current one, removed afterwards)"
	fs.Lookup("store").Usage = "the sale to create: `SPEC` is PATH, file:PATH or redis://HOST:PORT/DB?name=SALE (default: as -f)"
	procs := wholeFlag(fs, "procs", 4, 0, 10000, "start `P` buyer processes")
	tickets := wholeFlag(fs, "tickets", 5000, 0, math.MaxInt64, "sell `N` tickets")
	noSync := fs.Bool("no-sync", false, "skip fsync (not durable): to see what durability costs")
	force := fs.Bool("force", false, "with -f: replace an existing ticket file")
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if *procs < 1 || *tickets < 1 {
		return &usageError{"--procs and --tickets must be at least 1"}
	}
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
	if _, _, err := s.Init(ctx, *tickets, mode(*force)); err != nil {
		return err
	}
	c.durability(s, false)
	res, err := benchRun(ctx, path, int(*procs), *noSync)
	if err != nil {
		return err
	}
	report, err := s.Verify(ctx)
	if err != nil {
		return err
	}
	res.Balanced = report.Balanced() && report.Tickets == *tickets && report.State.Left() == 0
	res.Procs, res.Tickets, res.Durable = int(*procs), *tickets, !*noSync
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
		err = c.line("%.0f buys/s  (%d buys by %d %s in %.3fs, %s; latency p50 %s p99 %s; CPU %s per buy; books balance: %v)",
			res.BuysPerSec, res.Buys, res.Procs, plural(int64(res.Procs), "process", "processes"), res.WallSeconds, mode,
			time.Duration(res.P50ns), time.Duration(res.P99ns), time.Duration(res.CPUPerBuyNs), res.Balanced)
	}
	if err != nil {
		return err
	}
	if !res.Balanced {
		return shown{fmt.Errorf("bench: the books do not balance: %v: %w", report.Problems, ticket.ErrInvalid)}
	}
	return nil
}

// benchResult is what bench measured; its JSON names are stable.
type benchResult struct {
	Procs       int     `json:"procs"`
	Tickets     int64   `json:"tickets"`
	Durable     bool    `json:"durable"`
	Buys        int64   `json:"buys"`
	WallSeconds float64 `json:"wall_seconds"`
	BuysPerSec  float64 `json:"buys_per_sec"`
	P50ns       int64   `json:"p50_ns"`
	P99ns       int64   `json:"p99_ns"`
	CPUPerBuyNs int64   `json:"cpu_per_buy_ns"`
	Balanced    bool    `json:"balanced"`
}

// workerReport is what one bench worker prints when the tickets are gone.
type workerReport struct {
	Buys      int64   `json:"buys"`
	Latencies []int64 `json:"latencies_ns"`
}

// benchRun starts procs workers (this program as gated children: see
// child.go), opens the gate when all are there, and collects their
// reports.
func benchRun(ctx context.Context, path string, procs int, noSync bool) (benchResult, error) {
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
		cmd := g.command("bench", path, "bench"+strconv.Itoa(i), sync)
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
		lat = append(lat, rep.Latencies...)
	}
	wall := time.Since(start)
	if err := ctx.Err(); err != nil {
		return benchResult{}, err
	}
	res.WallSeconds = wall.Seconds()
	res.BuysPerSec = float64(res.Buys) / wall.Seconds()
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
// file, its buyer's name and "sync" or "nosync" (see child.go): it buys one
// ticket at a time until sold out, and prints its report.
func benchWorker(c *cli, args []string) error {
	if len(args) != 3 {
		return &usageError{fmt.Sprintf("a bench worker takes the ticket file, a buyer and sync or nosync, not %q", args)}
	}
	path, buyer, noSync := args[0], args[1], args[2] == "nosync"
	s, err := c.open(path, store.Options{NoSync: noSync})
	if err != nil {
		return err
	}
	defer s.Close()
	rep := workerReport{Latencies: make([]int64, 0, 1024)}
	ctx := context.Background()
	for {
		t0 := time.Now()
		_, err := s.Buy(ctx, buyer, 1)
		if errors.Is(err, ticket.ErrSoldOut) {
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
