package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/store/internal/storetest"
	"github.com/ticketd/ticket/ticket"
)

// The environment of a "book" child (see bookChild).
const (
	bookOp      = "STORE_TEST_BOOK_OP"      // buy, hold, confirm, release, return
	bookArg     = "STORE_TEST_BOOK_ARG"     // hold: the duration; confirm, release: the hold id; return: the sale number
	bookBuyer   = "STORE_TEST_BOOK_BUYER"   // buy, hold: the buyer
	bookCrash   = "STORE_TEST_BOOK_CRASH"   // the step at which to die by SIGKILL
	bookNoLimit = "STORE_TEST_BOOK_NOLIMIT" // set: the limit check is off (the negative control)
)

// bookChild makes one booking request and exits 0 done, 3 sold out, 8
// limit reached, 9 hold lapsed, 1 anything else; it prints the hold's id
// or the record's number. With bookCrash it SIGKILLs itself at that step.
func bookChild() int {
	path := os.Getenv(storetest.File)
	seam.NoLimitCheck = os.Getenv(bookNoLimit) != ""
	if step := os.Getenv(bookCrash); step != "" {
		at := func(s string) {
			if s == step {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Hour)
			}
		}
		seam.Fault = func(s string) error { at(s); return nil }
		seam.Crash = at
	}
	s := store.Open(path, store.Options{})
	ctx := context.Background()
	arg, buyer := os.Getenv(bookArg), os.Getenv(bookBuyer)
	var out string
	var err error
	switch os.Getenv(bookOp) {
	case "buy":
		var r store.Receipt
		r, err = s.Buy(ctx, buyer, 1)
		out = strconv.FormatInt(r.Sale.Seq, 10)
	case "hold":
		d, _ := time.ParseDuration(arg)
		var r store.HoldReceipt
		r, err = s.Hold(ctx, buyer, 1, d)
		out = r.Hold.Hold
	case "confirm":
		var r store.Receipt
		r, err = s.Confirm(ctx, arg)
		out = strconv.FormatInt(r.Sale.Seq, 10)
	case "release":
		_, err = s.Release(ctx, arg)
	case "return":
		n, _ := strconv.ParseInt(arg, 10, 64)
		var r ticket.Record
		r, err = s.Return(ctx, n, 1)
		out = strconv.FormatInt(r.Seq, 10)
	}
	if step := os.Getenv(bookCrash); step != "" {
		fmt.Fprintf(os.Stderr, "step %s never reached: %v\n", step, err)
		return 1
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

// book runs one book child to its end and returns its exit status and
// what it printed.
func book(t *testing.T, path string, env ...string) (int, string) {
	t.Helper()
	cmd := storetest.Child(t, "book", path, env...)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	storetest.StartChild(t, cmd)
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, strings.TrimSpace(stdout.String())
	case errors.As(err, &ee) && ee.Exited():
		if ee.ExitCode() == 1 {
			t.Logf("child %v: %s", env, cmd.Stderr)
		}
		return ee.ExitCode(), ""
	case storetest.KilledBySIGKILL(err):
		return -9, ""
	}
	t.Fatalf("book child %v: %v", env, err)
	return 0, ""
}

// newLimitSale starts a sale of total tickets with a per-buyer limit.
func newLimitSale(t *testing.T, total, limit int64) string {
	t.Helper()
	path := t.TempDir() + "/tickets.json"
	if _, _, err := store.Open(path, store.Options{}).InitLimit(context.Background(), total, limit, store.Create); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBookingFlow: hold, confirm (twice: one sale), release, return,
// restock and removal through the store, the ticket file showing each, and
// verify balancing after each.
func TestBookingFlow(t *testing.T) {
	ctx := context.Background()
	path := newLimitSale(t, 5, 3)
	s := store.Open(path, store.Options{})
	h, err := s.Hold(ctx, "alice", 2, time.Hour)
	if err != nil || h.State.Left() != 3 || h.State.Held() != 2 {
		t.Fatalf("hold: %+v, %v", h, err)
	}
	storetest.MustBalance(t, path)
	if _, err := s.Buy(ctx, "alice", 2); !errors.Is(err, ticket.ErrLimit) {
		t.Fatalf("alice's buy of 2 beside a hold of 2 under a limit of 3: %v", err)
	}
	c, err := s.Confirm(ctx, h.Hold.Hold)
	if err != nil || c.Sale.Kind != ticket.KindConfirm || c.Sale.Qty != 2 {
		t.Fatalf("confirm: %+v, %v", c, err)
	}
	again, err := s.Confirm(ctx, h.Hold.Hold)
	if err != nil || again.Sale.Seq != c.Sale.Seq {
		t.Fatalf("the second confirm: %+v, %v; want the first, #%d", again, err, c.Sale.Seq)
	}
	if st, _ := s.Read(); st.Sold() != 2 || st.Held() != 0 || st.Left() != 3 || st.Version() != c.Sale.Seq {
		t.Fatalf("after confirming twice: %v at %d", st, st.Version())
	}
	if _, err := s.Release(ctx, h.Hold.Hold); !errors.Is(err, store.ErrConfirmed) {
		t.Fatalf("release of a confirmed hold: %v", err)
	}
	h2, _ := s.Hold(ctx, "bob", 1, time.Hour)
	if _, err := s.Release(ctx, h2.Hold.Hold); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Confirm(ctx, h2.Hold.Hold); !errors.Is(err, ticket.ErrHoldLapsed) {
		t.Fatalf("confirm of a released hold: %v", err)
	}
	if _, err := s.Return(ctx, c.Sale.Seq, 3); !errors.Is(err, ticket.ErrReturn) {
		t.Fatalf("return of 3 of a sale of 2: %v", err)
	}
	if r, err := s.Return(ctx, c.Sale.Seq, 0); err != nil || r.Qty != 2 || r.Buyer != "alice" {
		t.Fatalf("return of all: %+v, %v", r, err)
	}
	if _, err := s.Return(ctx, c.Sale.Seq, 1); !errors.Is(err, ticket.ErrReturn) {
		t.Fatalf("a second return: %v", err)
	}
	if _, _, err := s.Restock(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Restock(ctx, -8); !errors.Is(err, ticket.ErrSoldOut) {
		t.Fatalf("removing 8 of 7 left: %v", err)
	}
	if _, st, err := s.Restock(ctx, -7); err != nil || st.Left() != 0 || st.Total() != 0 {
		t.Fatalf("removing all: %v, %v", st, err)
	}
	rep := storetest.MustBalance(t, path)
	if rep.Booked.Confirmed != 2 || rep.Booked.Returned != 2 || rep.Booked.Released != 1 || rep.Booked.Removed != 7 || rep.Booked.Restocked != 2 || rep.Added != 0 {
		t.Fatalf("verify counts %+v", rep.Booked)
	}
}

// TestBookingRefusals: bad requests are refused with their sentinel and
// leave the files as they were.
func TestBookingRefusals(t *testing.T) {
	ctx := context.Background()
	path := newLimitSale(t, 5, 2)
	s := store.Open(path, store.Options{})
	r, err := s.Buy(ctx, "alice", 2)
	if err != nil {
		t.Fatal(err)
	}
	other := newLimitSale(t, 5, 2)
	oh, err := store.Open(other, store.Options{}).Hold(ctx, "x", 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	before := storetest.TakeSnapshot(t, path)
	for _, c := range []struct {
		name string
		do   func() error
		want error
	}{
		{"unknown hold", func() error { _, err := s.Confirm(ctx, "99-0a1b2c3d"); return err }, ticket.ErrUnknownHold},
		{"not a hold id", func() error { _, err := s.Confirm(ctx, "abc"); return err }, ticket.ErrUnknownHold},
		{"hold of another sale", func() error { _, err := s.Confirm(ctx, oh.Hold.Hold); return err }, ticket.ErrUnknownHold},
		{"hold for 0", func() error { _, err := s.Hold(ctx, "bob", 1, 0); return err }, store.ErrDuration},
		{"return beyond the sale", func() error { _, err := s.Return(ctx, r.Sale.Seq, 3); return err }, ticket.ErrReturn},
		{"return of no sale", func() error { _, err := s.Return(ctx, 0, 1); return err }, ticket.ErrUnknownSale},
		{"return of the init record", func() error { _, err := s.Return(ctx, r.Sale.Seq+5, 1); return err }, ticket.ErrUnknownSale},
		{"over the limit", func() error { _, err := s.Hold(ctx, "alice", 1, time.Hour); return err }, ticket.ErrLimit},
		{"limit below a holding", func() error { _, _, err := s.SetLimit(ctx, 1); return err }, ticket.ErrLimit},
	} {
		if err := c.do(); !errors.Is(err, c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want %v on one line", c.name, err, c.want)
		}
	}
	if after := storetest.TakeSnapshot(t, path); !bytes.Equal(after.Ticket, before.Ticket) || !bytes.Equal(after.Journal, before.Journal) || after.Tmp {
		t.Fatalf("a refusal changed the files:\n%+v\n%+v", before, after)
	}
}

// TestHoldLapses: an expired hold counts as released for readers, who
// write nothing; the next writer records the release, and a confirm then
// says it lapsed.
func TestHoldLapses(t *testing.T) {
	ctx := context.Background()
	path := storetest.NewSale(t, 3)
	s := store.Open(path, store.Options{})
	h, err := s.Hold(ctx, "alice", 2, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for time.Now().Before(h.Hold.Expires.Add(time.Millisecond)) {
		time.Sleep(time.Millisecond)
	}
	before := storetest.TakeSnapshot(t, path)
	if st, err := s.Read(); err != nil || st.Left() != 3 || st.Held() != 0 {
		t.Fatalf("read after expiry: %v, %v", st, err)
	}
	rep := storetest.MustBalance(t, path)
	if !strings.Contains(rep.Pending, "lapsed") || rep.State.Held() != 0 {
		t.Fatalf("verify after expiry: pending %q, %v", rep.Pending, rep.State)
	}
	if after := storetest.TakeSnapshot(t, path); !bytes.Equal(after.Ticket, before.Ticket) || !bytes.Equal(after.Journal, before.Journal) {
		t.Fatal("a reader wrote")
	}
	if _, err := s.Confirm(ctx, h.Hold.Hold); !errors.Is(err, ticket.ErrHoldLapsed) || !strings.Contains(err.Error(), "lapsed") {
		t.Fatalf("confirm after expiry: %v", err)
	}
	rep = storetest.MustBalance(t, path)
	if rep.Pending != "" || rep.Booked.Lapsed != 2 || rep.State.Left() != 3 {
		t.Fatalf("after the lapse was recorded: %+v", rep)
	}
}

// TestLimitRace: many processes buy (or hold) as one buyer against a
// limit of K: exactly K succeed, the rest are refused with ErrLimit. The
// negative control switches the limit check off in the children
// (seam.NoLimitCheck), and the same race then gives the buyer more than K.
func TestLimitRace(t *testing.T) {
	const n, k = 12, 3
	for _, control := range []bool{false, true} {
		for _, op := range []string{"buy", "hold"} {
			t.Run(fmt.Sprintf("%s/control=%v", op, control), func(t *testing.T) {
				path := newLimitSale(t, 2*n, k)
				env := []string{bookOp + "=" + op, bookBuyer + "=alice", bookArg + "=1h"}
				if control {
					env = append(env, bookNoLimit+"=1")
				}
				codes := make(chan int, n)
				var wg sync.WaitGroup
				for range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						code, _ := book(t, path, env...)
						codes <- code
					}()
				}
				wg.Wait()
				close(codes)
				count := map[int]int{}
				for c := range codes {
					count[c]++
				}
				alice := holdingOf(t, path, "alice")
				if control {
					if count[0] <= k || alice <= k {
						t.Fatalf("without the check: %v, alice has %d: the race never overstepped the limit, so it proves nothing", count, alice)
					}
					rep, err := store.Open(path, store.Options{}).Verify(context.Background())
					if err != nil || !strings.Contains(strings.Join(rep.Problems, "\n"), "more than the limit") {
						t.Fatalf("verify did not find alice above the limit: %q, %v", rep.Problems, err)
					}
					return
				}
				if count[0] != k || count[8] != n-k || alice != k {
					t.Fatalf("outcomes %v (want %d done, %d refused with exit 8), alice has %d", count, k, n-k, alice)
				}
				storetest.MustBalance(t, path)
			})
		}
	}
}

// TestConfirmRacesExpiry: a confirm started in another process just as
// its hold expires, while other processes write (and so may record the
// lapse): exactly one outcome each round, the confirm's sale or the
// lapse, never both, and the books balance.
func TestConfirmRacesExpiry(t *testing.T) {
	rounds := 8
	if os.Getenv("TICKET_TEST_LONG") != "" {
		rounds = 60
	}
	path := storetest.NewSale(t, int64(rounds))
	s := store.Open(path, store.Options{})
	outcomes := map[int]int{}
	for i := range rounds {
		h, err := s.Hold(context.Background(), "racer", 1, time.Duration(5+8*(i%8))*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var code int
		wg.Add(2)
		go func() { defer wg.Done(); code, _ = book(t, path, bookOp+"=confirm", bookArg+"="+h.Hold.Hold) }()
		go func() {
			defer wg.Done()
			book(t, path, bookOp+"=hold", bookBuyer+"=other", bookArg+"=1ns") // a writer that records lapses
		}()
		wg.Wait()
		outcomes[code]++
		var confirms, releases int
		for r, err := range s.Sales() {
			if err != nil {
				t.Fatal(err)
			}
			if r.Hold == h.Hold.Hold {
				switch r.Kind {
				case ticket.KindConfirm:
					confirms++
				case ticket.KindRelease:
					releases++
				}
			}
		}
		// The lapse may still be only pending (no writer after it).
		if st, _ := s.Read(); st.Held() != 0 && code != 0 {
			t.Fatalf("round %d: the confirm said %d, yet the hold is still held", i, code)
		}
		switch {
		case code == 0 && (confirms != 1 || releases != 0):
			t.Fatalf("round %d: confirmed, yet the journal has %d confirms, %d releases of the hold", i, confirms, releases)
		case code == 9 && (confirms != 0 || releases > 1):
			t.Fatalf("round %d: lapsed, yet the journal has %d confirms, %d releases", i, confirms, releases)
		case code != 0 && code != 9:
			t.Fatalf("round %d: confirm exited %d", i, code)
		}
		storetest.MustBalance(t, path)
	}
	t.Logf("confirm outcomes over %d rounds: %v (0 confirmed, 9 lapsed)", rounds, outcomes)
}

// TestBookingCrash kills a process with SIGKILL in the middle of a hold,
// a confirm and a return (after deciding, before and after the journal's
// fsync, with the spare opened (and leased) to be written over, and with
// the next version written over the spare but not swapped in): the books
// balance after each, the request either happened wholly or not at all,
// and the sale goes on.
func TestBookingCrash(t *testing.T) {
	// Steps before the commit, then group commit's after it: a batch
	// leader killed with its batch committed, its outcomes not published.
	steps := []string{"", seam.GroupTake, seam.JournalWrite, seam.JournalSync, seam.TempWrite, seam.Rename, seam.GroupPublish, seam.GroupWake}
	for _, op := range []string{"hold", "confirm", "release", "return"} {
		for _, step := range steps {
			if step == "" {
				step = op + ".decided"
			}
			grouped := op != "return" // returns are made alone
			committed := step == seam.GroupPublish || step == seam.GroupWake
			if (step == seam.GroupTake || committed) && !grouped {
				continue
			}
			t.Run(op+"/"+step, func(t *testing.T) {
				ctx := context.Background()
				path := storetest.NewSale(t, 4, 1)
				s := store.Open(path, store.Options{})
				h, err := s.Hold(ctx, "setup", 1, time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				env := []string{bookOp + "=" + op, bookCrash + "=" + step, bookBuyer + "=victim", bookArg + "=1h"}
				switch op {
				case "confirm", "release":
					env[3] = bookArg + "=" + h.Hold.Hold
				case "return":
					env[3] = bookArg + "=1"
				}
				if code, _ := book(t, path, env...); code != -9 {
					t.Fatalf("the child exited %d, want death by SIGKILL", code)
				}
				storetest.MustBalance(t, path)
				st, err := s.Read()
				if err != nil {
					t.Fatal(err)
				}
				want := h.State.Version()
				if committed {
					want++
				}
				if st.Version() != want {
					t.Fatalf("after a crash at %s, the sale is at version %d, want %d", step, st.Version(), want)
				}
				// The sale goes on: every request works after it (a
				// confirm the crashed process committed is reported
				// again, as its first outcome).
				_, err = s.Confirm(ctx, h.Hold.Hold)
				if op == "release" && committed {
					if !errors.Is(err, ticket.ErrHoldLapsed) {
						t.Fatalf("a confirm of a hold the crashed process released: %v", err)
					}
				} else if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Return(ctx, 1, 1); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Hold(ctx, "after", 1, time.Hour); err != nil {
					t.Fatal(err)
				}
				if rep := storetest.MustBalance(t, path); rep.Pending != "" {
					t.Fatalf("pending after recovery: %q", rep.Pending)
				}
			})
		}
	}
}

// TestHoldRushLapses: many processes hold at once, a third of them
// confirm, the rest let their holds lapse: at the end every ticket is sold
// or back in stock, none held, and the books balance.
func TestHoldRushLapses(t *testing.T) {
	const n, total = 15, 10
	path := storetest.NewSale(t, total)
	var wg sync.WaitGroup
	ids := make([]string, n)
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := "20ms"
			if i%3 == 0 {
				d = "1h"
			}
			codes[i], ids[i] = book(t, path, bookOp+"=hold", bookBuyer+"="+fmt.Sprint("b", i), bookArg+"="+d)
		}()
	}
	wg.Wait()
	confirmed := 0
	for i := range n {
		if codes[i] != 0 && codes[i] != 3 {
			t.Fatalf("hold %d exited %d", i, codes[i])
		}
		if codes[i] == 0 && i%3 == 0 {
			if code, _ := book(t, path, bookOp+"=confirm", bookArg+"="+ids[i]); code != 0 {
				t.Fatalf("confirm of %s exited %d", ids[i], code)
			}
			confirmed++
		}
	}
	time.Sleep(30 * time.Millisecond) // past every short hold's expiry
	if code, _ := book(t, path, bookOp+"=buy", bookBuyer+"=late"); code != 0 && code != 3 {
		t.Fatalf("the last buy exited %d", code)
	}
	rep := storetest.MustBalance(t, path)
	st := rep.State
	if st.Held() != 0 || rep.Pending != "" || st.Left()+st.Sold() != total || rep.Booked.Confirmed != int64(confirmed) || rep.Booked.Lapsed+rep.Booked.Confirmed != rep.Booked.Holds {
		t.Fatalf("after the rush: %v, %+v, pending %q, %d confirmed", st, rep.Booked, rep.Pending, confirmed)
	}
	t.Logf("%d holders: %d held, %d confirmed, %d lapsed; %v", n, rep.Booked.Holds, rep.Booked.Confirmed, rep.Booked.Lapsed, st)
}

// holdingOf returns buyer's holding under the limit of the sale at path,
// counted from its journal's records alone.
func holdingOf(t *testing.T, path, buyer string) int64 {
	t.Helper()
	var n int64
	for r, err := range store.Open(path, store.Options{}).Sales() {
		if err != nil {
			t.Fatal(err)
		}
		if b, d := r.Holding(); b == buyer {
			n += d
		}
	}
	return n
}

// TestHoldingsIndex: in a sale with a per-buyer limit each buyer's holding
// lives in PATH.holders, which the journal rebuilds whatever happens to
// it (removed, garbled, left behind by a writer killed half-way through
// it), and the limit is kept exactly through all of it.
func TestHoldingsIndex(t *testing.T) {
	ctx := context.Background()
	path := newLimitSale(t, 50, 2)
	var notes []string
	s := store.Open(path, store.Options{Warn: func(n string) { notes = append(notes, n) }})
	buy := func(buyer string) error {
		t.Helper()
		_, err := s.Buy(ctx, buyer, 1)
		return err
	}
	mustLimit := func(buyer string) {
		t.Helper()
		if err := buy(buyer); !errors.Is(err, ticket.ErrLimit) {
			t.Fatalf("%s's third ticket under a limit of 2: %v", buyer, err)
		}
	}
	for _, b := range []string{"a", "a", "b"} {
		if err := buy(b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path + ".holders"); err != nil {
		t.Fatalf("no index beside a sale with a limit: %v", err)
	}
	mustLimit("a")
	storetest.MustBalance(t, path)

	// Removed: built again, quietly (deleting it is harmless).
	os.Remove(path + ".holders")
	notes = nil
	mustLimit("a")
	if len(notes) != 0 {
		t.Fatalf("notes for an index removed: %q", notes)
	}
	// Garbled: every byte after the header flipped; rebuilt with a note.
	b, err := os.ReadFile(path + ".holders")
	if err != nil {
		t.Fatal(err)
	}
	for i := 4096; i < len(b); i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(path+".holders", b, 0o644); err != nil {
		t.Fatal(err)
	}
	mustLimit("a")
	if !strings.Contains(strings.Join(notes, "\n"), "rebuilt from the journal") {
		t.Fatalf("no note of the rebuild: %q", notes)
	}
	if err := buy("b"); err != nil {
		t.Fatal(err)
	}
	mustLimit("b")
	storetest.MustBalance(t, path)

	// A writer killed after its commit, its index half written: the
	// next one rolls it forward, and c's two tickets count.
	if code, out := book(t, path, bookOp+"=buy", bookBuyer+"=c", bookCrash+"="+seam.HoldersApplied); code != -9 {
		t.Fatalf("the child exited %d (%s), want death by SIGKILL", code, out)
	}
	if err := buy("c"); err != nil {
		t.Fatal(err)
	}
	mustLimit("c")
	if rep := storetest.MustBalance(t, path); rep.Pending != "" {
		t.Fatalf("pending: %q", rep.Pending)
	}
	if got := holdingOf(t, path, "c"); got != 2 {
		t.Fatalf("c holds %d in the journal, want 2", got)
	}

	// A sale replaced by init drops the old sale's index.
	if _, _, err := s.InitLimit(ctx, 5, 1, store.Replace); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".holders"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the old sale's index is still there: %v", err)
	}
	if err := buy("a"); err != nil {
		t.Fatal(err)
	}
	mustLimit("a")
}

// TestVerifyFindsAWrongIndex: an index that disagrees with the journal
// though every checksum in it holds (a bug, or another program's write)
// is reported by verify, with what to do; done, the books balance.
func TestVerifyFindsAWrongIndex(t *testing.T) {
	ctx := context.Background()
	path := newLimitSale(t, 10, 3)
	s := store.Open(path, store.Options{})
	for _, b := range []string{"a", "a", "b"} {
		if _, err := s.Buy(ctx, b, 1); err != nil {
			t.Fatal(err)
		}
	}
	storetest.MustBalance(t, path)
	idx, err := os.ReadFile(path + ".holders")
	if err != nil {
		t.Fatal(err)
	}
	// One more ticket in the first buyer's slot (the format: a 4096-byte
	// header, then 64-byte slots: a 16-byte key, the holding, the record
	// number, and an FNV-1a checksum of the 32 bytes before it).
	changed := false
	for o := 4096; o+64 <= len(idx) && !changed; o += 64 {
		if bytes.Equal(idx[o:o+16], make([]byte, 16)) {
			continue
		}
		binary.LittleEndian.PutUint64(idx[o+16:], binary.LittleEndian.Uint64(idx[o+16:])+1)
		h := fnv.New64a()
		h.Write(idx[o : o+32])
		binary.LittleEndian.PutUint64(idx[o+32:], h.Sum64())
		changed = true
	}
	if !changed {
		t.Fatal("no slot in the index")
	}
	if err := os.WriteFile(path+".holders", idx, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Balanced() || !strings.Contains(strings.Join(rep.Problems, "\n"), ".holders says") {
		t.Fatalf("verify did not find the wrong index: %q", rep.Problems)
	}
	if err := os.Remove(path + ".holders"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Buy(ctx, "b", 1); err != nil {
		t.Fatal(err)
	}
	storetest.MustBalance(t, path)
}

// TestSoldOutBeforeLimit: a buyer at the limit asking when none are left
// hears sold out, the answer every sale gives then, alone or in a batch.
func TestSoldOutBeforeLimit(t *testing.T) {
	ctx := context.Background()
	for _, group := range []bool{false, true} {
		path := newLimitSale(t, 2, 2)
		s := store.Open(path, store.Options{NoGroup: !group})
		if _, err := s.Buy(ctx, "alice", 2); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Buy(ctx, "alice", 1); !errors.Is(err, ticket.ErrSoldOut) {
			t.Fatalf("group %v: alice at her limit, none left: %v, want sold out", group, err)
		}
		if _, err := s.Hold(ctx, "alice", 1, time.Hour); !errors.Is(err, ticket.ErrSoldOut) {
			t.Fatalf("group %v: a hold, none left: %v, want sold out", group, err)
		}
	}
}

// TestHoldsIndex: the open holds live in PATH.holds, which the journal
// rebuilds whatever happens to it (removed, put back from before, left
// dirty by a writer killed while writing it), and verify finds one that
// disagrees with the journal though it checks.
func TestHoldsIndex(t *testing.T) {
	ctx := context.Background()
	path := storetest.NewSale(t, 20)
	var notes []string
	s := store.Open(path, store.Options{Warn: func(n string) { notes = append(notes, n) }})
	hold := func(buyer string) string {
		t.Helper()
		h, err := s.Hold(ctx, buyer, 1, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return h.Hold.Hold
	}
	a, b := hold("a"), hold("b")
	if data, _ := os.ReadFile(path); bytes.Contains(data, []byte("holds")) || !bytes.Contains(data, []byte(`"held": 2`)) {
		t.Fatalf("the ticket file: %s", data)
	}
	before, err := os.ReadFile(path + ".holds")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Confirm(ctx, a); err != nil {
		t.Fatal(err)
	}
	// Put back from before the confirm: rolled forward, a stays confirmed.
	if err := os.WriteFile(path+".holds", before, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Confirm(ctx, a); err != nil {
		t.Fatalf("the first outcome again: %v", err)
	}
	if _, err := s.Release(ctx, a); !errors.Is(err, store.ErrConfirmed) {
		t.Fatalf("release of a confirmed hold: %v", err)
	}
	storetest.MustBalance(t, path)

	// Removed: built again from the journal; b is still open.
	os.Remove(path + ".holds")
	if _, err := s.Release(ctx, b); err != nil {
		t.Fatal(err)
	}

	// A writer killed while it writes the index: rebuilt by the next
	// (with e's hold open, it must be), with a note.
	hold("e")
	c := hold("c")
	if code, out := book(t, path, bookOp+"=confirm", bookArg+"="+c, bookCrash+"="+seam.HoldsApplied); code != -9 {
		t.Fatalf("the child exited %d (%s), want death by SIGKILL", code, out)
	}
	notes = nil
	d := hold("d")
	if !strings.Contains(strings.Join(notes, "\n"), "rebuilt from the journal") {
		t.Fatalf("no note of the rebuild: %q", notes)
	}
	if _, err := s.Confirm(ctx, c); err != nil {
		t.Fatalf("c was confirmed by the killed writer, and says so again: %v", err)
	}
	rep := storetest.MustBalance(t, path)
	if rep.State.Held() != 2 {
		t.Fatalf("held %d, want d's and e's", rep.State.Held())
	}

	// d's slot marked closed, checksum and all: verify finds it.
	idx, err := os.ReadFile(path + ".holds")
	if err != nil {
		t.Fatal(err)
	}
	seq, _ := ticket.HoldSeq(d)
	found := false
	for o := 4096; o+256 <= len(idx) && !found; o += 256 {
		if int64(binary.LittleEndian.Uint64(idx[o:])) != seq {
			continue
		}
		binary.LittleEndian.PutUint32(idx[o+28:], 0) // the slot's "open"
		h := fnv.New64a()
		h.Write(idx[o : o+248])
		binary.LittleEndian.PutUint64(idx[o+248:], h.Sum64())
		found = true
	}
	if !found {
		t.Fatalf("no slot for hold %s", d)
	}
	if err := os.WriteFile(path+".holds", idx, 0o644); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Verify(ctx); err != nil || rep.Balanced() || !strings.Contains(strings.Join(rep.Problems, "\n"), ".holds lists 1 open holds, not the 2") {
		t.Fatalf("verify did not find the wrong index: %q, %v", rep.Problems, err)
	}
}

// garbleHold flips a byte of hold id's slot in the sale's PATH.holds, or
// (entry) writes expiry 1 into the queue entry of the hold at the front.
func garbleHold(t *testing.T, path, id string, entry bool) {
	t.Helper()
	b, err := os.ReadFile(path + ".holds")
	if err != nil {
		t.Fatal(err)
	}
	seq, _ := ticket.HoldSeq(id)
	slots := binary.LittleEndian.Uint64(b[8:])
	if entry {
		heap := 4096 + int(slots)*256
		for o := heap; o+16 <= len(b); o += 16 {
			if int64(binary.LittleEndian.Uint64(b[o+8:])) == seq {
				binary.LittleEndian.PutUint64(b[o:], 1)
				break
			}
		}
	} else {
		for o := 4096; o+256 <= heapEnd(slots); o += 256 {
			if int64(binary.LittleEndian.Uint64(b[o:])) == seq {
				b[o+40] ^= 0xff // a byte of the buyer's name: the checksum no longer holds
			}
		}
	}
	if err := os.WriteFile(path+".holds", b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func heapEnd(slots uint64) int { return 4096 + int(slots)*256 }

// TestIndexDamageNeverDecides: damage to PATH.holds or PATH.holders never
// changes an outcome or stops a sale: a garbled slot behind expired holds,
// a queue entry claiming a live hold expired long ago, an index removed,
// a holders slot nobody looks up; readers do without the index; a hold
// too long for the index's clock is refused.
func TestIndexDamageNeverDecides(t *testing.T) {
	ctx := context.Background()
	path := newLimitSale(t, 10, 5)
	s := store.Open(path, store.Options{})
	hold := func(buyer string, d time.Duration) string {
		t.Helper()
		h, err := s.Hold(ctx, buyer, 1, d)
		if err != nil {
			t.Fatal(err)
		}
		return h.Hold.Hold
	}
	hold("a", time.Millisecond)
	hold("b", time.Millisecond)
	live := hold("c", time.Hour)
	time.Sleep(5 * time.Millisecond)
	// A garbled slot behind two expired holds: readers count the lapses
	// from the journal, the next writer rebuilds and goes on.
	garbleHold(t, path, live, false)
	if st, err := s.Read(); err != nil || st.Held() != 1 {
		t.Fatalf("read beside a damaged index: %v, %v", st, err)
	}
	if _, err := s.Buy(ctx, "d", 1); err != nil {
		t.Fatalf("a buy beside a damaged index: %v", err)
	}
	storetest.MustBalance(t, path)
	// A queue entry saying the live hold expired in 1970: the slot, which
	// checks, says otherwise; the hold stays open.
	garbleHold(t, path, live, true)
	if _, err := s.Buy(ctx, "d", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Confirm(ctx, live); err != nil {
		t.Fatalf("a live hold's confirm after its queue entry was damaged: %v", err)
	}
	storetest.MustBalance(t, path)
	// Removed: a reader counts an expired hold from the journal.
	hold("e", time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	os.Remove(path + ".holds")
	if st, err := s.Read(); err != nil || st.Held() != 0 {
		t.Fatalf("read without the index: %v (want the expired hold counted as released), %v", st, err)
	}
	// A holders slot nobody looks up, garbled: the limit can still be
	// changed, and verify says what to do without failing the books.
	b, err := os.ReadFile(path + ".holders")
	if err != nil {
		t.Fatal(err)
	}
	for o := 4096; o+64 <= len(b); o += 64 {
		if !bytes.Equal(b[o:o+16], make([]byte, 16)) {
			b[o+16] ^= 0x01
			break
		}
	}
	if err := os.WriteFile(path+".holders", b, 0o644); err != nil {
		t.Fatal(err)
	}
	rep := storetest.MustBalance(t, path)
	if !strings.Contains(rep.Pending, ".holders does not check") {
		t.Fatalf("verify's pending: %q", rep.Pending)
	}
	if _, _, err := s.SetLimit(ctx, 4); err != nil {
		t.Fatalf("a new limit beside a damaged index: %v", err)
	}
	storetest.MustBalance(t, path)
	// Too long for the index's nanoseconds: refused, nothing held.
	if _, err := s.Hold(ctx, "f", 1, 2100000*time.Hour); !errors.Is(err, store.ErrDuration) {
		t.Fatalf("a hold until the year 2266: %v", err)
	}
}

// TestCountOnlyPeerKeepsBooking: a peer that follows the lock protocol but
// writes the ticket file back with "count" alone (its other members lost)
// takes a ticket outside; the open hold, the held tickets and the limit
// stand, from the journal.
func TestCountOnlyPeerKeepsBooking(t *testing.T) {
	ctx := context.Background()
	path := newLimitSale(t, 10, 2)
	s := store.Open(path, store.Options{})
	h, err := s.Hold(ctx, "a", 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Buy(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	// The peer, under the lock: 8 left, one taken: {"count": 7}.
	unlock := storetest.HoldLock(t, path+".lock")
	if err := os.WriteFile(path, []byte(`{"count": 7}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unlock()
	if _, err := s.Confirm(ctx, h.Hold.Hold); err != nil {
		t.Fatalf("the open hold after a count-only peer: %v", err)
	}
	if _, err := s.Buy(ctx, "a", 1); !errors.Is(err, ticket.ErrLimit) {
		t.Fatalf("a's third ticket under a limit of 2 after a count-only peer: %v", err)
	}
	rep := storetest.MustBalance(t, path)
	if rep.State.Limit() != 2 || rep.State.Left() != 7 || rep.Counts.Outside != 1 {
		t.Fatalf("after the peer: %v, limit %d, %d outside", rep.State, rep.State.Limit(), rep.Counts.Outside)
	}
}

// TestLimitWithoutTheJournal: Limit reads the ticket file alone, and the
// journal when a count-only peer wrote the file back without "limit".
func TestLimitWithoutTheJournal(t *testing.T) {
	ctx := context.Background()
	path := newLimitSale(t, 10, 2)
	s := store.Open(path, store.Options{})
	defer s.Close()
	if k, err := s.Limit(ctx); k != 2 || err != nil {
		t.Fatalf("Limit = %d, %v; want 2", k, err)
	}
	unlock := storetest.HoldLock(t, path+".lock")
	if err := os.WriteFile(path, []byte(`{"count": 10}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unlock()
	if k, err := s.Limit(ctx); k != 2 || err != nil {
		t.Fatalf("Limit after a count-only peer = %d, %v; want 2, from the journal", k, err)
	}
	plain := storetest.NewSale(t, 10)
	if k, err := store.Open(plain, store.Options{}).Limit(ctx); k != 0 || err != nil {
		t.Fatalf("Limit of a sale without one = %d, %v", k, err)
	}
}
