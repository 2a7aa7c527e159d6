package store

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ticketd/ticket/ticket"
)

// The child roles of this package's multi-process tests: the test binary
// re-runs itself with STORE_TEST_ROLE set, and the role runs in init,
// before the tests.
const (
	roleEnv  = "STORE_TEST_ROLE"  // crash, hold or buy
	fileEnv  = "STORE_TEST_FILE"  // the ticket file
	crashEnv = "STORE_TEST_CRASH" // crash: the step at which to die; "done" after the buy returned

	buyerEnv  = "STORE_TEST_BUYER"  // buy: the buyer's name (default "waiter")
	buysEnv   = "STORE_TEST_BUYS"   // buy: how many buys to make, one after another (default 1)
	safetyEnv = "STORE_TEST_SAFETY" // groupSafety, as a duration ("0s": sleep until woken)
	noWakeEnv = "STORE_TEST_NOWAKE" // set: leaders owe no wake-up (the lost-wakeup control)

	readFaultEnv = "STORE_TEST_READ_FAULT" // set: the first read of the ticket file fails
	splitEnv     = "STORE_TEST_SPLIT"      // set: no lock identity check, no journal lock (the deleted-lock control)
)

func init() {
	if os.Getenv(roleEnv) == "" {
		return
	}
	// Group commit knobs for the children of group_test.go.
	if d := os.Getenv(safetyEnv); d != "" {
		var err error
		if groupSafety, err = time.ParseDuration(d); err != nil {
			panic(err)
		}
	}
	if os.Getenv(noWakeEnv) != "" {
		groupWake = false
	}
	if os.Getenv(splitEnv) != "" {
		checkIdentity, lockJournal = false, false
	}
	if os.Getenv(readFaultEnv) != "" {
		var once sync.Once
		fault = func(step string) (err error) {
			if step == stepRead {
				once.Do(func() { err = errInjected })
			}
			return err
		}
	}
	switch os.Getenv(roleEnv) {
	case "crash":
		os.Exit(crashChild(os.Getenv(fileEnv), os.Getenv(crashEnv)))
	case "hold":
		os.Exit(holdChild(os.Getenv(fileEnv)))
	case "buy":
		os.Exit(buyChild(os.Getenv(fileEnv)))
	case "pause":
		os.Exit(pauseChild(os.Getenv(fileEnv), os.Getenv(crashEnv)))
	case "foreign":
		os.Exit(foreignChild(os.Getenv(fileEnv)))
	}
	fmt.Fprintf(os.Stderr, "unknown %s %q\n", roleEnv, os.Getenv(roleEnv))
	os.Exit(2)
}

// crashChild buys one ticket and SIGKILLs itself from inside the fault
// seam when the buy reaches step: nothing after that point runs, as in a
// crash. It returns only if the buy never reached step.
func crashChild(path, step string) int {
	die := func() {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Hour) // SIGKILL is on its way; nothing else may run
	}
	fault = func(s string) error {
		if s == step {
			die()
		}
		return nil
	}
	crashPoint = func(s string) {
		if s == step {
			die()
		}
	}
	_, err := Open(path, Options{}).Buy(context.Background(), "victim", 1)
	if step == "done" {
		die()
	}
	fmt.Fprintf(os.Stderr, "step %s never reached: %v\n", step, err)
	return 3
}

// holdChild takes the lock, says "locked" on stdout and holds it until
// it is killed.
func holdChild(path string) int {
	s := Open(path, Options{})
	unlock, err := Lock(context.Background(), s.LockPath(), 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer unlock()
	fmt.Println("locked")
	time.Sleep(time.Hour) // not select{}: the runtime would call that a deadlock and exit
	return 1
}

// buyChild buys one ticket (or STORE_TEST_BUYS, one after another),
// waiting for the lock as long as it takes, and prints each sale's number.
func buyChild(path string) int {
	buyer := cmp.Or(os.Getenv(buyerEnv), "waiter")
	n, _ := strconv.Atoi(cmp.Or(os.Getenv(buysEnv), "1"))
	s := Open(path, Options{})
	for range n {
		r, err := s.Buy(context.Background(), buyer, 1)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(r.Sale.Seq)
	}
	return 0
}

// child returns the test binary as a child in role with the ticket file
// path; startChild starts it and kills it by pid when the test ends,
// whatever the outcome.
func child(t *testing.T, role, path string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// GORACE: under -race a child would sleep a second at exit.
	cmd.Env = append(os.Environ(), append([]string{roleEnv + "=" + role, fileEnv + "=" + path, "GORACE=atexit_sleep_ms=0 " + os.Getenv("GORACE")}, env...)...)
	cmd.Stderr = &strings.Builder{}
	return cmd
}

func startChild(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// killedBySIGKILL reports whether a finished command died of SIGKILL.
func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// simulateReboot makes this process see another boot of the machine
// until the test ends: a journal marked by the processes before is then
// one written before a restart (see sameBoot).
func simulateReboot(t *testing.T) {
	t.Helper()
	old := currentBoot
	boot := []byte(fmt.Sprintf("boot-after-%d", time.Now().UnixNano()))
	currentBoot = func() []byte { return boot }
	t.Cleanup(func() { currentBoot = old })
}

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
// PATH.tmp, and Verify balances with nothing pending.
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
		{stepRead, false, false, false, ""},
		{stepJournalOpen, false, false, false, ""},
		{stepJournalCut, false, false, true, "cut an unfinished line"},
		{stepJournalWrite, false, false, false, ""},
		{stepJournalSync, true, false, false, "cut what a crashed buyer never committed"}, // written, not yet fsynced
		{stepTempCreate, true, false, false, "cut what a crashed buyer never committed"},  // after the journal fsync
		{stepTempWrite, true, false, false, "cut what a crashed buyer never committed"},
		{stepRename, true, false, false, "cut what a crashed buyer never committed"}, // PATH.tmp written
		{"done", true, true, false, ""},
	}
	for _, reboot := range []bool{false, true} {
		for _, c := range cases {
			name := c.step
			if reboot {
				name = "after-restart/" + c.step
			}
			t.Run(name, func(t *testing.T) {
				path := newSale(t, 10, 2)
				if c.before {
					st, err := Open(path, Options{}).Read()
					if err != nil {
						t.Fatal(err)
					}
					line := uncommittedLine(t, st, 1)
					appendFile(t, path+".journal", line[:len(line)-5])
				}
				cmd := child(t, "crash", path, crashEnv+"="+c.step)
				startChild(t, cmd)
				if err := cmd.Wait(); !killedBySIGKILL(err) {
					t.Fatalf("crash child: got %v, want death by SIGKILL (stderr: %s)", err, cmd.Stderr)
				}
				if reboot {
					simulateReboot(t)
				}
				file, _, err := readState(path)
				if err != nil {
					t.Fatalf("after a crash at %s the ticket file does not parse: %v", c.step, err)
				}
				st, err := Open(path, Options{}).Read()
				if err != nil {
					t.Fatalf("after a crash at %s: read: %v", c.step, err)
				}
				committed := c.inFile || (reboot && c.whole)
				want := int64(1)
				if committed {
					want = 2
				}
				if st.Version != want || (file.Version == 2) != c.inFile {
					t.Fatalf("after a crash at %s: Read says version %d (want %d), the ticket file %d (want it to show the sale: %v)", c.step, st.Version, want, file.Version, c.inFile)
				}
				note := c.note
				if reboot && c.whole && !c.inFile {
					note = "completed what was committed before a restart"
				}
				rep := mustBalance(t, path)
				if (rep.Pending != "") != (note != "") || rep.State.Version != want {
					t.Fatalf("after a crash at %s: verify says version %d, pending %q", c.step, rep.State.Version, rep.Pending)
				}
				var notes []string
				r, err := Open(path, Options{Warn: func(n string) { notes = append(notes, n) }}).Buy(context.Background(), "next", 1)
				if err != nil {
					t.Fatalf("the buy after a crash at %s: %v", c.step, err)
				}
				if r.Sale.Seq != want+1 {
					t.Fatalf("next sale #%d, want #%d", r.Sale.Seq, want+1)
				}
				if note != "" && !strings.Contains(strings.Join(notes, "\n"), note) {
					t.Fatalf("the next buyer noted %q, want %q", notes, note)
				}
				rep = mustBalance(t, path)
				if rep.Pending != "" || rep.Sales != want+1 {
					t.Fatalf("after recovery: %d sales, pending %q; want %d, none", rep.Sales, rep.Pending, want+1)
				}
				if file, _, err := readState(path); err != nil || file.Version != want+1 {
					t.Fatalf("after recovery the ticket file is at version %d (%v), want %d", file.Version, err, want+1)
				}
				if _, err := os.Stat(path + ".tmp"); err == nil {
					t.Fatalf("%s.tmp left after the next buy", path)
				}
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
		return ticket.Sale{Seq: seq, Buyer: "x", Qty: qty, Left: left, PID: 1, Time: time.Unix(0, 0)}.AppendLine(nil)
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
			r, err := Open(path, Options{}).Verify(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if r.Balanced() || !strings.Contains(strings.Join(r.Problems, "\n"), c.want) {
				t.Fatalf("problems %q, want one containing %q", r.Problems, c.want)
			}
			if !c.refused {
				return // the middle of the journal is Verify's job: a buy stays O(1)
			}
			before := takeSnapshot(t, path)
			if _, err := Open(path, Options{}).Buy(context.Background(), "b", 1); err == nil {
				t.Fatalf("a buy on unbalanced books succeeded")
			} else if c.journal != nil && !errors.Is(err, ErrJournal) && !errors.Is(err, ticket.ErrInvalid) {
				t.Fatalf("buy: %v, want ErrJournal", err)
			}
			after := takeSnapshot(t, path)
			if string(after.ticket) != string(before.ticket) || (c.journal != nil && string(after.journal) != string(before.journal)) {
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
	path := newSale(t, 5)
	holder := child(t, "hold", path)
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	startChild(t, holder)
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("holder said %q, %v (stderr: %s)", line, err, holder.Stderr)
	}
	waiter := child(t, "buy", path)
	var wout strings.Builder
	waiter.Stdout = &wout
	startChild(t, waiter)
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
	mustBalance(t, path)
}

// TestCrashThenSoldOut: a buyer that took the last ticket and died after
// its journal line was fsynced but before it replaced the ticket file sold
// nothing (in the same boot): the next buyer gets that ticket, cleans up
// the crashed buyer's PATH.tmp, and the one after is told it is sold out.
// No temporary file or uncommitted line outlives the next buy.
func TestCrashThenSoldOut(t *testing.T) {
	path := newSale(t, 3, 2) // 1 left
	cmd := child(t, "crash", path, crashEnv+"="+stepRename)
	startChild(t, cmd)
	if err := cmd.Wait(); !killedBySIGKILL(err) {
		t.Fatalf("crash child: got %v, want death by SIGKILL (stderr: %s)", err, cmd.Stderr)
	}
	if _, err := os.Stat(path + ".tmp"); err != nil {
		t.Fatalf("the crash left no %s.tmp to clean up: %v", path, err)
	}
	var notes []string
	s := Open(path, Options{Warn: func(n string) { notes = append(notes, n) }})
	r, err := s.Buy(context.Background(), "next", 1)
	if err != nil || r.Sale.Seq != 2 || r.State.Left != 0 {
		t.Fatalf("buy 1 after the crashed buyer: %+v, %v; want sale #2, 0 left", r, err)
	}
	if _, err := os.Stat(path + ".tmp"); err == nil {
		t.Fatalf("%s.tmp is left after the next buy; notes: %q", path, notes)
	}
	if r, err := s.Buy(context.Background(), "greedy", 1); !errors.Is(err, ticket.ErrSoldOut) || r.State.Left != 0 {
		t.Fatalf("the buy after that: %v, %d left; want ErrSoldOut, 0 left", err, r.State.Left)
	}
	if rep := mustBalance(t, path); rep.Pending != "" || rep.Sales != 2 {
		t.Fatalf("after the next buys: %d sales, pending %q; want 2, none", rep.Sales, rep.Pending)
	}
}
