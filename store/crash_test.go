package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/store/internal/storetest"
	"github.com/ticketd/ticket/ticket"
	"golang.org/x/sys/unix"
)

// TestCrashPoints kills a buyer with SIGKILL at each step of the commit
// (from inside the fault seam, so at exactly that point) and then checks,
// in the same boot of the machine, that the sale is wholly there if the
// buyer replaced the ticket file before it died, and wholly absent
// otherwise, even if its line is whole in the journal: the ticket file is
// never behind what is committed while the lock is free, so a process
// that reads only the ticket file (a buyer following the lock protocol
// without ticket) never decides on a stale count. Read agrees with the
// ticket file, Verify balances (what the crash left is only Pending), and
// the next buyer cuts what was never committed, says so, leaves no
// PATH.tmp and only an older version in PATH.spare, and Verify balances
// with nothing pending.
//
// After a restart (simulated: the process sees another boot id), a whole
// line beyond the ticket file may be a sale confirmed just before a power
// cut took the ticket file's rename with it: the same leftovers are then
// rolled forward instead, and the next buyer completes them.
func TestCrashPoints(t *testing.T) {
	cases := []struct {
		step   string
		whole  bool   // the crashed sale's line is whole in the journal
		inFile bool   // the ticket file itself shows it: committed
		before bool   // start from an unfinished journal line (to reach journal.cut)
		note   string // what the next buyer says it repaired, in the same boot
	}{
		{seam.Read, false, false, false, ""},
		{seam.JournalOpen, false, false, false, ""},
		{seam.JournalCut, false, false, true, "cut an unfinished line"},
		{seam.JournalWrite, false, false, false, ""},
		{seam.JournalSync, true, false, false, "cut what a crashed buyer never committed"}, // written, not yet fsynced
		{seam.TempCreate, true, false, false, "cut what a crashed buyer never committed"},  // after the journal fsync
		{seam.TempWrite, true, false, false, "cut what a crashed buyer never committed"},
		{seam.Rename, true, false, false, "cut what a crashed buyer never committed"}, // PATH.spare written
		{"done", true, true, false, ""},
	}
	for _, reboot := range []bool{false, true} {
		for _, c := range cases {
			name := c.step
			if reboot {
				name = "after-restart/" + c.step
			}
			t.Run(name, func(t *testing.T) {
				path := storetest.NewSale(t, 10, 2)
				if c.before {
					st, err := store.Open(path, store.Options{}).Read()
					if err != nil {
						t.Fatal(err)
					}
					line := storetest.UncommittedLine(t, st, 1)
					storetest.AppendFile(t, path+".journal", line[:len(line)-5])
				}
				cmd := storetest.Child(t, "crash", path, storetest.Crash+"="+c.step)
				storetest.StartChild(t, cmd)
				if err := cmd.Wait(); !storetest.KilledBySIGKILL(err) {
					t.Fatalf("crash child: got %v, want death by SIGKILL (stderr: %s)", err, cmd.Stderr)
				}
				if reboot {
					store.SimulateReboot(t)
				}
				file, err := storetest.TicketFile(path)
				if err != nil {
					t.Fatalf("after a crash at %s the ticket file does not parse: %v", c.step, err)
				}
				st, err := store.Open(path, store.Options{}).Read()
				if err != nil {
					t.Fatalf("after a crash at %s: read: %v", c.step, err)
				}
				committed := c.inFile || (reboot && c.whole)
				want := int64(1)
				if committed {
					want = 2
				}
				if st.Version() != want || (file.Version() == 2) != c.inFile {
					t.Fatalf("after a crash at %s: Read says version %d (want %d), the ticket file %d (want it to show the sale: %v)", c.step, st.Version(), want, file.Version(), c.inFile)
				}
				note := c.note
				if reboot && c.whole && !c.inFile {
					note = "completed what was committed before a restart"
				}
				rep := storetest.MustBalance(t, path)
				if (rep.Pending != "") != (note != "") || rep.State.Version() != want {
					t.Fatalf("after a crash at %s: verify says version %d, pending %q", c.step, rep.State.Version(), rep.Pending)
				}
				var notes []string
				r, err := store.Open(path, store.Options{Warn: func(n string) { notes = append(notes, n) }}).Buy(context.Background(), "next", 1)
				if err != nil {
					t.Fatalf("the buy after a crash at %s: %v", c.step, err)
				}
				if r.Sale.Seq != want+1 {
					t.Fatalf("next sale #%d, want #%d", r.Sale.Seq, want+1)
				}
				if note != "" && !strings.Contains(strings.Join(notes, "\n"), note) {
					t.Fatalf("the next buyer noted %q, want %q", notes, note)
				}
				rep = storetest.MustBalance(t, path)
				if rep.Pending != "" || rep.Sales != want+1 {
					t.Fatalf("after recovery: %d sales, pending %q; want %d, none", rep.Sales, rep.Pending, want+1)
				}
				if file, err := storetest.TicketFile(path); err != nil || file.Version() != want+1 {
					t.Fatalf("after recovery the ticket file is at version %d (%v), want %d", file.Version(), err, want+1)
				}
				if _, err := os.Stat(path + ".tmp"); err == nil {
					t.Fatalf("%s.Tmp left after the next buy", path)
				}
				mustSpareBehind(t, path, want+1)
			})
		}
	}
}

// TestVerifyFindsDiscrepancies is the negative control of the crash and
// fault tests: it shows that Verify (which they rely on) reports each kind
// of damage an unsafe commit order or a lost write would leave, and that a
// buy refuses such a journal without changing anything.
func TestVerifyFindsDiscrepancies(t *testing.T) {
	sale := func(seq, qty, left int64) []byte {
		return ticket.Record{Seq: seq, Buyer: "x", Qty: qty, Left: left, PID: 1, Time: time.Unix(0, 0)}.AppendLine(nil)
	}
	cases := []struct {
		name    string
		journal [][]byte
		ticket  string
		want    string
		refused bool // a buy, which reads only the journal's tail, refuses it too
	}{
		// The ticket file replaced before the journal was written, then a crash.
		{"sale-missing-from-journal", [][]byte{sale(1, 2, 8)}, `{"count": 7, "total": 10, "sold": 3, "version": 2}`, "ticket file is at version 2", true},
		{"gap", [][]byte{sale(1, 2, 8), sale(3, 1, 7)}, `{"count": 7, "total": 10, "sold": 3, "version": 3}`, "without gaps", false},
		{"repeat", [][]byte{sale(1, 2, 8), sale(1, 1, 7)}, `{"count": 7, "total": 10, "sold": 3, "version": 1}`, "without gaps", false},
		{"left-does-not-follow", [][]byte{sale(1, 2, 8), sale(2, 1, 5)}, `{"count": 5, "total": 10, "sold": 5, "version": 2}`, "the records before it leave", false},
		// A total the journal's sales do not explain (a count lower than the
		// last sale left would be a sale made outside ticket: no problem).
		{"total-does-not-balance", [][]byte{sale(1, 2, 8)}, `{"count": 8, "total": 12, "sold": 4, "version": 1}`, "is not the", false},
		{"garbage-line", [][]byte{sale(1, 2, 8), []byte("garbage\n")}, `{"count": 8, "total": 10, "sold": 2, "version": 1}`, "line 2", true},
		{"no-journal-but-sales", nil, `{"count": 8, "total": 10, "sold": 2, "version": 1}`, "ticket file is at version 1", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.json")
			if err := os.WriteFile(path, []byte(c.ticket), 0o644); err != nil {
				t.Fatal(err)
			}
			if c.journal != nil {
				var all []byte
				for _, l := range c.journal {
					all = append(all, l...)
				}
				if err := os.WriteFile(path+".journal", all, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r, err := store.Open(path, store.Options{}).Verify(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if r.Balanced() || !strings.Contains(strings.Join(r.Problems, "\n"), c.want) {
				t.Fatalf("problems %q, want one containing %q", r.Problems, c.want)
			}
			if !c.refused {
				return // the middle of the journal is Verify's job: a buy stays O(1)
			}
			before := storetest.TakeSnapshot(t, path)
			if _, err := store.Open(path, store.Options{}).Buy(context.Background(), "b", 1); err == nil {
				t.Fatalf("a buy on unbalanced books succeeded")
			} else if c.journal != nil && !errors.Is(err, store.ErrJournal) && !errors.Is(err, ticket.ErrInvalid) {
				t.Fatalf("buy: %v, want store.ErrJournal", err)
			}
			after := storetest.TakeSnapshot(t, path)
			if string(after.Ticket) != string(before.Ticket) || (c.journal != nil && string(after.Journal) != string(before.Journal)) {
				t.Fatalf("a refused buy changed the files")
			}
		})
	}
}

// TestLockHolderDies: a buyer waiting behind a holder that is killed with
// SIGKILL while holding the lock gets it (the kernel releases an flock
// when its holder dies) and buys. While the holder lives, the waiter is
// shown blocked on the lock in /proc/locks and has not finished: that is
// the control that the release, not chance, let it through.
func TestLockHolderDies(t *testing.T) {
	path := storetest.NewSale(t, 5)
	holder := storetest.Child(t, "hold", path)
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	storetest.StartChild(t, holder)
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("holder said %q, %v (stderr: %s)", line, err, holder.Stderr)
	}
	waiter := storetest.Child(t, "buy", path)
	var wout strings.Builder
	waiter.Stdout = &wout
	storetest.StartChild(t, waiter)
	done := make(chan error, 1)
	go func() { done <- waiter.Wait() }()

	// Wait until the kernel shows the waiter blocked on the lock.
	for blocked := false; !blocked; {
		select {
		case err := <-done:
			t.Fatalf("the waiter finished while the lock was held: %v, %q", err, wout.String())
		case <-time.After(10 * time.Millisecond):
		}
		locks, err := os.ReadFile("/proc/locks")
		if err != nil {
			t.Skipf("cannot see blocked waiters: %v", err)
		}
		blocked = strings.Contains(string(locks), fmt.Sprintf("-> FLOCK  ADVISORY  WRITE %d ", waiter.Process.Pid))
	}
	killed := time.Now()
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiter: %v (stderr: %s)", err, waiter.Stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiter still waits 30s after the holder was killed")
	}
	t.Logf("waiter bought sale #%s and exited %v after the holder was killed", strings.TrimSpace(wout.String()), time.Since(killed))
	if strings.TrimSpace(wout.String()) != "1" {
		t.Fatalf("waiter bought sale %q, want 1", wout.String())
	}
	storetest.MustBalance(t, path)
}

// TestCrashThenSoldOut: a buyer that took the last ticket and died after
// its journal line was fsynced but before it swapped its version in sold
// nothing (in the same boot): the next buyer gets that ticket, writes over
// the crashed buyer's version in PATH.spare, and the one after is told it
// is sold out. No uncommitted line outlives the next buy, and the spare
// then holds only the version the next buy displaced.
func TestCrashThenSoldOut(t *testing.T) {
	path := storetest.NewSale(t, 3, 2) // 1 left
	cmd := storetest.Child(t, "crash", path, storetest.Crash+"="+seam.Rename)
	storetest.StartChild(t, cmd)
	if err := cmd.Wait(); !storetest.KilledBySIGKILL(err) {
		t.Fatalf("crash child: got %v, want death by SIGKILL (stderr: %s)", err, cmd.Stderr)
	}
	if spare, err := storetest.TicketFile(path + ".spare"); err != nil || spare.Left() != 0 {
		t.Fatalf("the crash left no version selling the last ticket in %s.spare: %+v, %v", path, spare, err)
	}
	// Mark the crashed buyer's spare (an inode number is reused as soon
	// as it is freed, an extended attribute is not).
	marked := unix.Setxattr(path+".spare", "user.ticket-test", []byte("crashed"), 0) == nil
	var notes []string
	s := store.Open(path, store.Options{Warn: func(n string) { notes = append(notes, n) }})
	r, err := s.Buy(context.Background(), "next", 1)
	if err != nil || r.Sale.Seq != 2 || r.State.Left() != 0 {
		t.Fatalf("buy 1 after the crashed buyer: %+v, %v; want sale #2, 0 left", r, err)
	}
	if _, err := os.Stat(path + ".tmp"); err == nil {
		t.Fatalf("%s.Tmp is left after the next buy; notes: %q", path, notes)
	}
	mustSpareBehind(t, path, 2)
	// The crashed buyer's spare, holding a version whose record was cut,
	// is not written over in place: after a power cut its old content
	// could come back as the ticket file.
	if _, err := unix.Getxattr(path, "user.ticket-test", make([]byte, 16)); marked && err == nil {
		t.Fatal("the ticket file is the crashed buyer's spare, written over in place")
	}
	if r, err := s.Buy(context.Background(), "greedy", 1); !errors.Is(err, ticket.ErrSoldOut) || r.State.Left() != 0 {
		t.Fatalf("the buy after that: %v, %d left; want store.ErrSoldOut, 0 left", err, r.State.Left())
	}
	if rep := storetest.MustBalance(t, path); rep.Pending != "" || rep.Sales != 2 {
		t.Fatalf("after the next buys: %d sales, pending %q; want 2, none", rep.Sales, rep.Pending)
	}
}

// mustSpareBehind fails t unless the ticket file at path is at version
// want and its spare holds an older version (the one the last commit
// read and displaced): never one at or ahead of the ticket file, nor one
// that does not parse.
func mustSpareBehind(t *testing.T, path string, want int64) {
	t.Helper()
	file, err := storetest.TicketFile(path)
	if err != nil || file.Version() != want {
		t.Fatalf("the ticket file is at version %d (%v), want %d", file.Version(), err, want)
	}
	spare, err := storetest.TicketFile(path + ".spare")
	if err != nil || spare.Version() >= want {
		t.Fatalf("%s.spare holds version %d (%v), want one before %d, the one the last commit displaced", path, spare.Version(), err, want)
	}
}
