package redis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// The environment of a child process the tests start (see bookChild).
const (
	childOp      = "TICKET_REDIS_TEST_OP"      // hold, confirm, return, buy or settle
	childURL     = "TICKET_REDIS_TEST_URL"     // the sale
	childArg     = "TICKET_REDIS_TEST_ARG"     // hold: its duration; confirm: the hold; return: the sale
	childBuyer   = "TICKET_REDIS_TEST_BUYER"   // hold, buy: the buyer
	childID      = "TICKET_REDIS_TEST_ID"      // the request id (default: a fresh one)
	childNoLimit = "TICKET_REDIS_TEST_NOLIMIT" // "1": the scripts skip the limit check
	childGate    = "TICKET_REDIS_TEST_GATE"    // "1": connect, then wait for a byte on stdin before the request
)

func TestMain(m *testing.M) {
	if os.Getenv(childOp) != "" {
		os.Exit(bookChild())
	}
	os.Exit(m.Run())
}

// bookChild makes one request of a child process and exits 0 done, 3 sold
// out, 8 limit reached, 9 hold lapsed, 1 anything else; it prints the hold's
// id or the record's number.
func bookChild() int {
	testNoLimitCheck = os.Getenv(childNoLimit) == "1"
	r, err := Open(os.Getenv(childURL))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer r.Close()
	ctx := context.Background()
	id := os.Getenv(childID)
	if id == "" {
		id = NewRequestID()
	}
	arg, buyer := os.Getenv(childArg), os.Getenv(childBuyer)
	if os.Getenv(childGate) == "1" {
		if err := r.client.Ping(ctx).Err(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		var b [1]byte
		if _, err := os.Stdin.Read(b[:]); err != nil {
			fmt.Fprintln(os.Stderr, "gate:", err)
			return 1
		}
	}
	var out string
	switch os.Getenv(childOp) {
	case "hold":
		d, _ := time.ParseDuration(arg)
		var h store.HoldReceipt
		h, err = r.HoldRequest(ctx, id, buyer, 1, d)
		out = h.Hold.Hold
	case "buy":
		var rc store.Receipt
		rc, err = r.BuyRequest(ctx, id, buyer, 1)
		out = strconv.FormatInt(rc.Sale.Seq, 10)
	case "confirm":
		var rc store.Receipt
		rc, err = r.ConfirmRequest(ctx, id, arg)
		out = strconv.FormatInt(rc.Sale.Seq, 10)
	case "return":
		n, _ := strconv.ParseInt(arg, 10, 64)
		var rec ticket.Record
		rec, err = r.ReturnRequest(ctx, id, n, 1)
		out = strconv.FormatInt(rec.Seq, 10)
	case "settle":
		err = r.settle(ctx)
	}
	switch {
	case err == nil:
		fmt.Println(out)
		return 0
	case errors.Is(err, ticket.ErrSoldOut):
		return 3
	case errors.Is(err, ticket.ErrLimit):
		return 8
	case errors.Is(err, ticket.ErrHoldLapsed):
		return 9
	}
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// child returns the command of a child process making one request on the
// sale at url, with env (see bookChild); the test kills it when it ends,
// if it is still running.
func child(t *testing.T, url string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{childURL + "=" + url}, env...)...)
	t.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// exitCode returns a finished child's exit status, -1 if it was killed.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -2
	}
	return 0
}
