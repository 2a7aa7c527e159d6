//go:build linux

package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/store/internal/storetest"
	"github.com/ticketd/ticket/ticket"
)

// TestCrashWindowForeignBuyer kills a ticket buyer that holds the lock at
// each step of its commit while a buyer written without ticket (see
// foreignChild) waits for the lock next in line, with one ticket left.
// The foreign buyer decides on the ticket file alone, so the ticket file
// must never be behind what is committed when the lock is free: exactly
// one ticket is sold in the end, to the ticket buyer (if it replaced the
// ticket file before it died) or to the foreign one, never to both; the
// books balance after the next ticket buy, which records the foreign sale.
//
// The negative control reads the same leftovers as if the machine had
// restarted since, so that a whole journal line beyond the ticket file is
// rolled forward as committed (what a power cut requires): there the
// foreign buyer's decision was made on a stale count, and for at least
// one step two buyers were told they got the last ticket, which the next
// buy reports (ticket.OversoldError) instead of dropping either sale.
func TestCrashWindowForeignBuyer(t *testing.T) {
	steps := []string{seam.Read, seam.JournalOpen, seam.JournalWrite, seam.JournalSync, seam.TempCreate, seam.TempWrite, seam.Rename, seam.GroupPublish, seam.GroupWake}
	controlOversold := 0
	for _, step := range steps {
		for _, mode := range []string{"", "count-only", "control"} {
			control, countOnly := mode == "control", mode == "count-only"
			name := step
			switch {
			case control:
				name = "control-as-after-a-restart/" + step
			case countOnly:
				// A foreign buyer that writes "count" alone (the file's
				// version lost): the journal must still tell whether the
				// ticket buyer's version was ever shown.
				name = "count-only/" + step
			}
			t.Run(name, func(t *testing.T) {
				path := storetest.NewSale(t, 3, 2) // 1 left
				victim := storetest.Child(t, "pause", path, storetest.Crash+"="+step)
				out, err := victim.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				storetest.StartChild(t, victim)
				if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "at "+step+"\n" {
					t.Fatalf("the ticket buyer said %q, %v (stderr: %s)", line, err, victim.Stderr)
				}
				var env []string
				if countOnly {
					env = append(env, storetest.CountOnly+"=1")
				}
				foreign := storetest.Child(t, "foreign", path, env...)
				var fout strings.Builder
				foreign.Stdout = &fout
				storetest.StartChild(t, foreign)
				heldLock := step != seam.GroupWake // it has unlocked by then
				if heldLock {
					storetest.BlockedOnLock(t, foreign.Process.Pid)
				}
				if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				if err := victim.Wait(); !storetest.KilledBySIGKILL(err) {
					t.Fatalf("ticket buyer: %v, want death by SIGKILL", err)
				}
				ferr := foreign.Wait()
				got := strings.TrimSpace(fout.String()) == "got"
				if !got && strings.TrimSpace(fout.String()) != "sold out" {
					t.Fatalf("foreign buyer: %v, said %q (stderr: %s)", ferr, fout.String(), foreign.Stderr)
				}
				if control {
					store.SimulateReboot(t)
				}
				s := store.Open(path, store.Options{})
				_, err = s.Buy(context.Background(), "after", 1)
				var oversold *ticket.OversoldError
				if control && errors.As(err, &oversold) {
					// The victim's line, rolled forward, and the foreign
					// sale took the same ticket: refused, and said so.
					t.Logf("the next buy refuses: %v", err)
					controlOversold++
					return
				}
				if !errors.Is(err, ticket.ErrSoldOut) {
					t.Fatalf("a buy after both: %v, want sold out", err)
				}
				rep := storetest.MustBalance(t, path)
				victimSold := false
				for r, err := range s.Sales() {
					if err != nil {
						t.Fatal(err)
					}
					victimSold = victimSold || r.Buyer == "victim"
				}
				sold := 0
				if victimSold {
					sold++
				}
				if got {
					sold++
				}
				t.Logf("ticket buyer's sale stands: %v; foreign buyer got one: %v; the books: %d sales, %d outside", victimSold, got, rep.Sales, rep.Outside)
				if control {
					if sold > 1 {
						t.Fatalf("the last ticket went to both buyers, and the next buy did not notice")
					}
					return
				}
				if sold != 1 || rep.State.Left() != 0 {
					t.Fatalf("the last ticket went to %d buyers (ticket buyer's sale stands: %v, foreign buyer got one: %v), %d left", sold, victimSold, got, rep.State.Left())
				}
				if got != (rep.Outside == 1) {
					t.Fatalf("the foreign buyer got one: %v, but the books record %d taken outside ticket", got, rep.Outside)
				}
			})
		}
	}
	if controlOversold == 0 && !t.Failed() {
		t.Fatal("the control (leftovers read as after a restart) never sold the last ticket twice: the test cannot see the window")
	}
	t.Logf("control: the last ticket sold twice, and reported, at %d of %d steps when read as after a restart", controlOversold, len(steps))
}

// deleteLockFile deletes PATH.lock again and again, every 200 us, as an
// administrator cleaning up a "stale" lock file would, until the function
// it returns is called; that returns how many times it was deleted.
func deleteLockFile(path string) (stop func() int) {
	done := make(chan struct{})
	deleted := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-done:
				deleted <- n
				return
			default:
			}
			if os.Remove(path+".lock") == nil {
				n++
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	return func() int { close(done); return <-deleted }
}

// TestDeletedLockFileNeverSplits starts buyer processes against a sale
// while the test deletes PATH.lock again and again, as an administrator
// cleaning up a "stale" lock file would. Each buyer that then creates a
// new lock file locks a file the others never see; the buyers must still
// exclude each other (Lock checks the file it locked is still at the path,
// and the journal is locked too), so exactly the stock is sold, each sale
// number once. The negative control, without those two, oversells or
// repeats a sale number in at least one of its attempts.
func TestDeletedLockFileNeverSplits(t *testing.T) {
	const tickets, procs, each = 60, 30, 3 // 90 buys for 60 tickets
	run := func(t *testing.T, control bool) (problem string) {
		path := storetest.NewSale(t, tickets)
		env := []string{storetest.Safety + "=20ms"}
		if control {
			env = append(env, storetest.Split+"=1")
		}
		stopDeleting := deleteLockFile(path)
		cmds := make([]*storetest.Proc, 0, procs)
		for i := range procs {
			cmds = append(cmds, storetest.Buyers(t, path, 1, each, append(env, storetest.Buyer+"="+fmt.Sprintf("b%d", i))...)...)
		}
		storetest.WaitAll(cmds, 60*time.Second)
		n := stopDeleting()
		reported := map[int64]int{}
		for _, c := range cmds {
			for _, f := range strings.Fields(c.Stdout()) {
				seq, _ := strconv.ParseInt(f, 10, 64)
				reported[seq]++
			}
		}
		seqs := 0
		for seq, k := range reported {
			seqs += k
			if k > 1 {
				problem = fmt.Sprintf("sale #%d reported to %d buyers", seq, k)
			}
		}
		t.Logf("lock file deleted %d times; %d buys reported", n, seqs)
		for _, c := range cmds {
			if e := c.Stderr(); c.Err != nil && !strings.Contains(e, "sold out") {
				t.Logf("a buyer: %v: %s", c.Err, e)
			}
		}
		if seqs > tickets {
			return fmt.Sprintf("%d buyers told they got one of %d tickets", seqs, tickets)
		}
		if problem != "" {
			return problem
		}
		rep, err := store.Open(path, store.Options{}).Verify(context.Background())
		switch {
		case err != nil:
			return err.Error()
		case !rep.Balanced():
			return strings.Join(rep.Problems, "; ")
		case rep.Sales != tickets || seqs != tickets || rep.State.Left() != 0:
			per := map[string]int{}
			for r, _ := range store.Open(path, store.Options{}).Sales() {
				if r.Kind == ticket.KindSale {
					per[r.Buyer]++
				}
			}
			for i, c := range cmds {
				n := len(strings.Fields(c.Stdout()))
				if per[fmt.Sprintf("b%d", i)] != n {
					t.Logf("b%d: %d sales in the journal, %d reported; stdout %q stderr %q", i, per[fmt.Sprintf("b%d", i)], n, c.Stdout(), c.Stderr())
				}
			}
			return fmt.Sprintf("%d sales recorded, %d reported, %d left; want %d, %d, 0", rep.Sales, seqs, rep.State.Left(), tickets, tickets)
		}
		return ""
	}
	if p := run(t, false); p != "" {
		t.Fatal(p)
	}
	for attempt := 1; attempt <= 5; attempt++ {
		if p := run(t, true); p != "" {
			t.Logf("control (no identity check, no journal lock), attempt %d: %s", attempt, p)
			return
		}
	}
	t.Fatal("the control never split the lock in 5 attempts: the test does not delete the lock file where it matters")
}

// TestPeerBesideTicketBuyerKept: a deleted lock file can let a buyer
// without ticket in while a ticket buyer holds the lock it deleted. The
// ticket buyer is paused just before it replaces the ticket file (its sale
// committed to the journal), and the peer, in that moment, takes a ticket
// from the ticket file as it finds it:
//   - "peer-first": the peer replaces the file before the ticket buyer
//     does; ticket swaps its version in (RENAME_EXCHANGE), finds the one it
//     displaced is not the one it read, and keeps its change of count;
//   - "ticket-first": the peer read the file before, and replaces it after
//     the ticket buyer is done; the next buy rolls the ticket buyer's
//     committed record forward and keeps the peer's change beside it.
//
// Either way both sales are in the books (one as taken outside ticket) and
// verify balances. The control, renaming over instead of swapping, loses
// the peer's sale in the first order.
func TestPeerBesideTicketBuyerKept(t *testing.T) {
	for _, c := range []struct {
		name      string
		peerFirst bool
		control   bool
	}{
		{"peer-first", true, false},
		{"ticket-first", false, false},
		{"control-peer-first-renamed-over", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := storetest.NewSale(t, 10, 1) // 9 left
			env := []string{storetest.Crash + "=" + seam.Rename, storetest.Resume + "=1"}
			if c.control {
				env = append(env, storetest.NoExchange+"=1")
			}
			victim := storetest.Child(t, "pause", path, env...)
			in, err := victim.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			out, err := victim.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			storetest.StartChild(t, victim)
			r := bufio.NewReader(out)
			if line, err := r.ReadString('\n'); err != nil || line != "at "+seam.Rename+"\n" {
				t.Fatalf("the ticket buyer said %q, %v", line, err)
			}
			// The peer: count - 1 on the ticket file as it finds it now.
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			peer := strings.Replace(string(data), `"count": 9`, `"count": 8`, 1)
			if peer == string(data) {
				t.Fatalf("the ticket file reads %s", data)
			}
			if c.peerFirst {
				putBack(t, path, []byte(peer))
			}
			in.Close() // the ticket buyer goes on
			if line, err := r.ReadString('\n'); err != nil || line != "sold #2\n" {
				t.Fatalf("the ticket buyer said %q, %v (stderr: %s)", line, err, victim.Stderr)
			}
			if err := victim.Wait(); err != nil {
				t.Fatal(err)
			}
			if !c.peerFirst {
				putBack(t, path, []byte(peer))
			}
			if _, err := store.Open(path, store.Options{}).Buy(context.Background(), "after", 1); err != nil {
				t.Fatal(err)
			}
			rep := storetest.MustBalance(t, path)
			t.Logf("the books: %d sales, %d taken outside, %d left", rep.Sales, rep.Outside, rep.State.Left())
			kept := rep.Outside == 1 && rep.Sales == 3 && rep.State.Left() == 6
			switch {
			case c.control && kept:
				t.Fatal("the control kept the peer's sale: the test cannot see what the exchange does")
			case !c.control && !kept:
				t.Fatalf("the peer's sale or the ticket buyer's is not in the books: %d sales, %d outside, %d left; want 3, 1 and 6", rep.Sales, rep.Outside, rep.State.Left())
			}
		})
	}
}
