//go:build linux

package group_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/group"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/store/internal/storetest"
	"github.com/ticketd/ticket/store/lock"
	"github.com/ticketd/ticket/ticket"
)

// TestGroupLeaderCrash kills a leader with SIGKILL at each step of a group
// commit whose batch holds five other buyers' requests, and checks that
// each of them is served exactly once: it exits 0 with a sale number, the
// journal holds that sale under its name once, nobody else's sale is
// lost or doubled, and Verify balances. The leader is made the one that
// commits the batch: it waits in flock(2) as the successor while the test
// holds the lock, and the five post their requests before the test lets go.
func TestGroupLeaderCrash(t *testing.T) {
	steps := []string{seam.GroupTake, seam.JournalWrite, seam.JournalSync, seam.TempCreate, seam.Rename, seam.GroupPublish, seam.GroupWake}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			path := storetest.NewSale(t, 100, 1) // the first buy sets the region up
			reg := region(t, path)
			unlock := storetest.HoldLock(t, path+".lock")
			leader := storetest.Child(t, "crash", path, storetest.Crash+"="+step, storetest.Safety+"=50ms")
			storetest.StartChild(t, leader)
			storetest.WaitFor(t, 10*time.Second, "successor", func() bool { return reg.Successor() == int32(leader.Process.Pid) })
			// Each buyer's first read of the ticket file fails: the first
			// of them to lead after the crash fails before it reaches the
			// slots, and the crashed leader's batch must stay open for the
			// next one.
			cmds := storetest.Buyers(t, path, 5, 1, storetest.Safety+"=50ms", storetest.ReadFault+"=1")
			storetest.WaitFor(t, 10*time.Second, "six pending requests", func() bool { return reg.Pending() == 6 })
			unlock()
			if err := leader.Wait(); !storetest.KilledBySIGKILL(err) {
				t.Fatalf("leader: %v, want death by SIGKILL at %s (stderr: %s)", err, step, leader.Stderr)
			}

			if n := storetest.WaitAll(cmds, 30*time.Second); n != len(cmds) {
				t.Fatalf("%d buyers still waiting 30s after the leader died at %s", len(cmds)-n, step)
			}
			sales := map[string][]int64{}
			for s, err := range store.Open(path, store.Options{}).Sales() {
				if err != nil {
					t.Fatal(err)
				}
				sales[s.Buyer] = append(sales[s.Buyer], s.Seq)
			}
			for i, c := range cmds {
				name := fmt.Sprintf("buyer%d", i)
				got := sales[name]
				if c.Err != nil {
					// A buyer that led before the dead leader took its
					// request gets its own injected error, and no sale.
					if !strings.Contains(c.Stderr(), storetest.ErrInjected.Error()) || len(got) != 0 {
						t.Fatalf("%s: %v (stderr: %s); the journal has %v", name, c.Err, c.Stderr(), got)
					}
					continue
				}
				told := strings.TrimSpace(c.Stdout())
				if len(got) != 1 || strconv.FormatInt(got[0], 10) != told {
					t.Errorf("%s was told sale #%s; the journal has %v", name, told, got)
				}
			}
			if len(sales["victim"]) > 1 {
				t.Errorf("the leader's own request was sold %d times", len(sales["victim"]))
			}
			rep := storetest.MustBalance(t, path)
			t.Logf("crash at %s: the leader's own sale in the journal: %v; %d sales", step, len(sales["victim"]) == 1, rep.Sales)
			// The next buy leads, and frees the dead leader's slot.
			if _, err := store.Open(path, store.Options{}).Buy(context.Background(), "after", 1); err != nil {
				t.Fatal(err)
			}
			for i, owner := range reg.Owners() {
				if owner != 0 {
					t.Errorf("slot %d still held by %d", i, owner)
				}
			}
			storetest.MustBalance(t, path)
		})
	}
}

// TestGroupLeaderCrashBooking is TestGroupLeaderCrash for holds and
// confirms: a leader killed at each step of a batch that holds five other
// processes' holds. Each of them gets exactly one hold, under the id it
// is told, and its confirm makes exactly one sale of it; nothing is held
// at the end and the books balance.
func TestGroupLeaderCrashBooking(t *testing.T) {
	steps := []string{seam.GroupTake, "hold.decided", seam.JournalSync, seam.Rename, seam.GroupPublish, seam.GroupWake}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			for attempt := 1; attempt <= 10; attempt++ {
				if leaderCrashBooking(t, step) {
					return
				}
				t.Logf("attempt %d: a buyer took the lock before the crashing leader and led its batch; again", attempt)
			}
			t.Fatal("in 10 attempts the crashing leader never led")
		})
	}
}

// leaderCrashBooking is one attempt of TestGroupLeaderCrashBooking at step;
// it reports false when a buyer's first try of the lock, made just as the
// test let go, took it before the leader waiting in flock(2), so that the
// leader never led.
func leaderCrashBooking(t *testing.T, step string) bool {
	path := storetest.NewSale(t, 100, 1)
	reg := region(t, path)
	unlock := storetest.HoldLock(t, path+".lock")
	leader := storetest.Child(t, "crash", path, storetest.Crash+"="+step, storetest.Safety+"=50ms", storetest.Op+"=hold")
	storetest.StartChild(t, leader)
	storetest.WaitFor(t, 10*time.Second, "successor", func() bool { return reg.Successor() == int32(leader.Process.Pid) })
	cmds := storetest.Buyers(t, path, 5, 1, storetest.Safety+"=50ms", storetest.Op+"=hold")
	storetest.WaitFor(t, 10*time.Second, "six pending requests", func() bool { return reg.Pending() == 6 })
	unlock()
	if err := leader.Wait(); !storetest.KilledBySIGKILL(err) {
		if strings.Contains(fmt.Sprint(leader.Stderr), "never reached") {
			storetest.WaitAll(cmds, 30*time.Second)
			return false
		}
		t.Fatalf("leader: %v, want death by SIGKILL at %s (stderr: %s)", err, step, leader.Stderr)
	}
	if n := storetest.WaitAll(cmds, 30*time.Second); n != len(cmds) {
		t.Fatalf("%d buyers still waiting 30s after the leader died at %s", len(cmds)-n, step)
	}
	holds := map[string][]string{}   // buyer: hold ids
	confirms := map[string][]int64{} // hold id: confirm numbers
	for r, err := range store.Open(path, store.Options{}).Sales() {
		if err != nil {
			t.Fatal(err)
		}
		switch r.Kind {
		case ticket.KindHold:
			holds[r.Buyer] = append(holds[r.Buyer], r.Hold)
		case ticket.KindConfirm:
			confirms[r.Hold] = append(confirms[r.Hold], r.Seq)
		}
	}
	for i, c := range cmds {
		name := fmt.Sprintf("buyer%d", i)
		if c.Err != nil {
			t.Fatalf("%s: %v (stderr: %s)", name, c.Err, c.Stderr())
		}
		var id string
		var seq int64
		if _, err := fmt.Sscan(c.Stdout(), &id, &seq); err != nil {
			t.Fatalf("%s printed %q", name, c.Stdout())
		}
		if got := holds[name]; len(got) != 1 || got[0] != id {
			t.Errorf("%s was told hold %s; the journal has %v", name, id, got)
		}
		if got := confirms[id]; len(got) != 1 || got[0] != seq {
			t.Errorf("%s was told confirm #%d of %s; the journal has %v", name, seq, id, got)
		}
	}
	if len(holds["victim"]) > 1 {
		t.Errorf("the leader's own hold was made %d times", len(holds["victim"]))
	}
	rep := storetest.MustBalance(t, path)
	if want := int64(len(holds["victim"])); rep.State.Held() != want {
		t.Errorf("%d held at the end, want %d (the dead leader's own hold, if made)", rep.State.Held(), want)
	}
	return true
}

// TestGroupNoLostWakeup runs buyers whose sleeps never time out (no safety
// net): if a single wake-up were lost, a buyer would sleep forever. With
// the wake-up a leader owes switched off (the control), they must hang:
// that shows this test can see a lost wake-up.
func TestGroupNoLostWakeup(t *testing.T) {
	for _, control := range []bool{false, true} {
		t.Run(fmt.Sprintf("control=%v", control), func(t *testing.T) {
			path := storetest.NewSale(t, 1<<30, 1)
			env := []string{storetest.Safety + "=0s"}
			if control {
				env = append(env, storetest.NoWake+"=1")
			}
			procs, buys := 8, storetest.Size(60, 300)
			start := time.Now()
			cmds := storetest.Buyers(t, path, procs, buys, env...)
			limit := 120 * time.Second
			if control {
				limit = 5 * time.Second
			}
			n := storetest.WaitAll(cmds, limit)
			if control {
				if n == procs {
					t.Fatalf("without the leader's wake-up, %d buyers of %d buys each still finished: this test cannot see a lost wake-up", procs, buys)
				}
				t.Logf("control: without the wake-up, %d of %d buyers finished in %v; the others slept on", n, procs, limit)
				return
			}
			if n != procs {
				t.Fatalf("only %d of %d buyers finished in %v: a wake-up was lost", n, procs, limit)
			}
			for _, c := range cmds {
				if c.Err != nil {
					t.Fatalf("buyer: %v (stderr: %s)", c.Err, c.Stderr())
				}
			}
			rep := storetest.MustBalance(t, path)
			if rep.Sales != int64(1+procs*buys) {
				t.Fatalf("%d sales, want %d", rep.Sales, 1+procs*buys)
			}
			t.Logf("%d buyers made %d buys each in %v with no safety net", procs, buys, time.Since(start))
		})
	}
}

// TestGroupBehindFlock: a holder that knows nothing of group commit
// (flock(1) in a script) wakes nobody when it lets go; the successor,
// waiting in flock(2), takes over and commits for the sleepers. No sleep
// times out (no safety net), none finishes while the lock is held, and
// all finish once it is released.
func TestGroupBehindFlock(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("no flock(1): util-linux is not installed")
	}
	path := storetest.NewSale(t, 100, 1)
	// flock(1) holds the lock until its command, cat, reads end of file:
	// until the test closes its stdin, however long the buyers take to
	// start.
	holder := exec.Command("flock", path+".lock", "cat")
	release, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	storetest.StartChild(t, holder)
	region(t, path) // skips where group commit is not available
	// Let flock(1) take the lock before the buyers come.
	storetest.WaitFor(t, 10*time.Second, "holder", func() bool {
		unlock, ok, err := lock.TryLock(path+".lock", 0)
		if ok {
			unlock()
		}
		return err == nil && !ok
	})
	cmds := storetest.Buyers(t, path, 6, 1, storetest.Safety+"=0s")
	if n := storetest.WaitAll(cmds, 200*time.Millisecond); n != 0 {
		t.Fatalf("%d buyers finished while flock(1) held the lock", n)
	}
	release.Close()
	if err := holder.Wait(); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	if n := storetest.WaitAll(cmds, 30*time.Second); n != len(cmds) {
		t.Fatalf("only %d of 6 buyers finished in 30s after flock(1) let go", n)
	}
	t.Logf("all 6 buyers finished %v after flock(1) let go", time.Since(released))
	if rep := storetest.MustBalance(t, path); rep.Sales != 7 {
		t.Fatalf("%d sales, want 7", rep.Sales)
	}
}

// TestGroupNoSyncLeader: a --no-sync buyer that leads a batch holding a
// durable buyer's request fsyncs the journal for it; a batch of --no-sync
// requests only is not fsynced (the control, which shows that the count
// below sees the difference).
func TestGroupNoSyncLeader(t *testing.T) {
	for _, durable := range []bool{true, false} {
		t.Run(fmt.Sprintf("second-durable=%v", durable), func(t *testing.T) {
			path := storetest.NewSale(t, 100, 1)
			reg := region(t, path)
			var syncs atomic.Int32
			storetest.SetFault(t, func(step string) error {
				if step == seam.JournalSync {
					syncs.Add(1)
				}
				return nil
			})
			unlock, err := lock.Lock(context.Background(), path+".lock", 0)
			if err != nil {
				t.Fatal(err)
			}
			errs := make(chan error, 2)
			buy := func(noSync bool, name string) {
				_, err := store.Open(path, store.Options{NoSync: noSync}).Buy(context.Background(), name, 1)
				errs <- err
			}
			go buy(true, "nosync-leader")
			storetest.WaitFor(t, 10*time.Second, "successor", func() bool { return reg.Successor() != 0 })
			go buy(!durable, "second")
			storetest.WaitFor(t, 10*time.Second, "two pending requests", func() bool { return reg.Pending() == 2 })
			unlock()
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if got := syncs.Load() > 0; got != durable {
				t.Fatalf("journal fsyncs: %d; want some: %v", syncs.Load(), durable)
			}
			storetest.MustBalance(t, path)
		})
	}
}

// TestGroupLeaderCrashThenRestore: a leader dies with its batch open, then
// the sale is replaced (ticket copy --force: Restore takes the lock alone and
// archives the journal) by one with a shorter history. The buyers posted
// their requests in the old journal's region: the next of them to lead
// finds that its region no longer serves the sale's journal, and each buys
// alone, on the new sale, once; none fails or waits for ever. The test
// lets the leader go only once every buyer sleeps on its slot, so that
// none can become the successor and lead the old sale first.
func TestGroupLeaderCrashThenRestore(t *testing.T) {
	path := storetest.NewSale(t, 100, 1, 1, 1)
	reg := region(t, path)
	unlock := storetest.HoldLock(t, path+".lock")
	leader := storetest.Child(t, "crash", path, storetest.Crash+"="+seam.JournalSync)
	storetest.StartChild(t, leader)
	storetest.WaitFor(t, 10*time.Second, "successor", func() bool { return reg.Successor() == int32(leader.Process.Pid) })
	cmds := storetest.Buyers(t, path, 5, 1, storetest.Safety+"=30s") // asleep until the test wakes them
	storetest.WaitFor(t, 10*time.Second, "six pending requests", func() bool { return reg.Pending() == 6 })
	storetest.WaitFor(t, 10*time.Second, "five buyers asleep", func() bool {
		for _, c := range cmds {
			if !asleepOnSlot(t, c.Process.Pid) {
				return false
			}
		}
		return true
	})
	unlock()
	if err := leader.Wait(); !storetest.KilledBySIGKILL(err) {
		t.Fatalf("leader: %v, want death by SIGKILL (stderr: %s)", err, leader.Stderr)
	}
	if !reg.BatchOpen() {
		t.Fatal("the dead leader left no open batch")
	}
	// The dead leader woke no one: the test wakes them after the
	// restore, as a new buyer or the safety net would.
	fresh, _ := ticket.New(50)
	next, _ := fresh.Take(1)
	old := []ticket.Record{{Seq: 1, Buyer: "copied", Qty: 1, Left: 49, PID: 1, Time: time.Unix(0, 0)}}
	if _, err := store.Open(path, store.Options{}).Restore(context.Background(), next, old, store.Replace); err != nil {
		t.Fatal(err)
	}
	reg.WakeAfterUnlock()
	if n := storetest.WaitAll(cmds, 10*time.Second); n != len(cmds) {
		t.Fatalf("%d buyers still waiting 10s after the restore (first: %s; pending %d, batch open %v, slots %v)", len(cmds)-n, cmds[0].Stderr(), reg.Pending(), reg.BatchOpen(), reg.Slots())
	}
	sales := map[string]int{}
	for s, err := range store.Open(path, store.Options{}).Sales() {
		if err != nil {
			t.Fatal(err)
		}
		sales[s.Buyer]++
	}
	for i, c := range cmds {
		if c.Err != nil {
			t.Fatalf("buyer%d: %v (stderr: %s)", i, c.Err, c.Stderr())
		}
		if n := sales[fmt.Sprintf("buyer%d", i)]; n != 1 {
			t.Errorf("buyer%d has %d sales in the new journal, want 1 (it said %q)", i, n, c.Stdout())
		}
	}
	if rep := storetest.MustBalance(t, path); rep.State.Left() != 44 {
		t.Fatalf("%d left of 50, want 44", rep.State.Left())
	}
}

// TestGroupDeadWaiters: buyers SIGKILLed while they wait for the lock and
// not yet reaped by their parent (zombies, as a slow shell or supervisor
// leaves them) still answer kill(pid, 0), but they will never read their
// slot: the next leader must free their requests, not sell them tickets.
// A stopped buyer (SIGSTOP) is alive: the leader sells it its ticket, which
// it reads when it goes on. The
// victims are real child processes of this test, deliberately not reaped
// until the end.
func TestGroupDeadWaiters(t *testing.T) {
	path := storetest.NewSale(t, 10, 1) // the first buy sets the region up
	reg := region(t, path)
	unlock := storetest.HoldLock(t, path+".lock")
	var victims []*exec.Cmd
	for i := range 3 {
		v := storetest.Child(t, "buy", path, storetest.Buyer+"=victim"+strconv.Itoa(i), storetest.Safety+"=30s")
		storetest.StartChild(t, v) // killed and reaped at the end, whatever the outcome
		victims = append(victims, v)
		storetest.WaitFor(t, 10*time.Second, "the victim's request", func() bool { return reg.Pending() == i+1 })
	}
	// The sleeper is its own process group: a stopped process in the
	// test's group would get SIGHUP if that group were ever orphaned.
	sleeper := storetest.Child(t, "buy", path, storetest.Buyer+"=sleeper", storetest.Safety+"=30s")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out strings.Builder
	sleeper.Stdout = &out
	storetest.StartChild(t, sleeper)
	t.Cleanup(func() { _ = sleeper.Process.Signal(syscall.SIGCONT) }) // before the kill: cleanups run last first
	storetest.WaitFor(t, 10*time.Second, "the sleeper's request", func() bool { return reg.Pending() == 4 })
	for _, v := range victims {
		if err := v.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	if err := sleeper.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for _, v := range victims {
		storetest.WaitFor(t, 10*time.Second, "a zombie", func() bool { return procState(v.Process.Pid) == "Z" })
	}
	storetest.WaitFor(t, 10*time.Second, "a stopped sleeper", func() bool { return procState(sleeper.Process.Pid) == "T" })

	unlock()
	if _, err := store.Open(path, store.Options{}).Buy(context.Background(), "alive", 1); err != nil {
		t.Fatal(err)
	}
	// The journal as the live buyer's batch left it, before the sleeper
	// goes on: its request was in the batch.
	sales := map[string][]int64{}
	for s, err := range store.Open(path, store.Options{}).Sales() {
		if err != nil {
			t.Fatal(err)
		}
		sales[s.Buyer] = append(sales[s.Buyer], s.Seq)
	}
	if err := sleeper.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := sleeper.Wait(); err != nil {
		t.Fatalf("sleeper: %v (stderr: %s)", err, sleeper.Stderr)
	}
	for i := range victims {
		if got := sales["victim"+strconv.Itoa(i)]; len(got) != 0 {
			t.Errorf("victim%d, killed while waiting and not reaped, was sold sale %v", i, got)
		}
	}
	if got := sales["sleeper"]; len(got) != 1 || strconv.FormatInt(got[0], 10) != strings.TrimSpace(out.String()) {
		t.Errorf("the stopped sleeper was told %q; the journal had %v before it went on", out.String(), got)
	}
	if got := sales["alive"]; len(got) != 1 {
		t.Errorf("the live buyer's sales: %v", got)
	}
	if rep := storetest.MustBalance(t, path); rep.State.Left() != 7 {
		t.Errorf("%d left of 10, want 7 (the first buy, alive and the sleeper)", rep.State.Left())
	}
	for _, v := range victims {
		if err := v.Wait(); !storetest.KilledBySIGKILL(err) {
			t.Errorf("victim: %v, want death by SIGKILL", err)
		}
	}
}

// procState returns pid's state letter from /proc/PID/stat ("" if none).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := bytes.LastIndexByte(b, ')')
	if err != nil || i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2])
}

// asleepOnSlot reports whether a thread of process pid sleeps in a
// shared futex wait (FUTEX_WAIT, op 0: a slot's wake word; the Go
// runtime's own sleeps are private, op 128), as /proc shows it. It skips
// the test where /proc does not show system calls.
func asleepOnSlot(t *testing.T, pid int) bool {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
		if err != nil {
			t.Skipf("cannot see what the buyers wait for: %v", err)
		}
		f := strings.Fields(string(b))
		if len(f) > 2 && f[0] == strconv.Itoa(int(syscall.SYS_FUTEX)) && f[2] == "0x0" {
			return true
		}
	}
	return false
}

// TestGroupNoSyncLeaderAfterCrash: a leader dies after writing a batch of
// durable requests to the journal but before its fsync; the next leader is
// a --no-sync buyer. It cuts the dead leader's lines (never committed) and
// decides the requests again: since they are durable, it must fsync the
// batch. (A sleeper may wake and lead first; then the attempt is made
// again.)
func TestGroupNoSyncLeaderAfterCrash(t *testing.T) {
	for attempt := 1; attempt <= 10; attempt++ {
		if noSyncLeaderAfterCrash(t) {
			return
		}
		t.Logf("attempt %d: a durable buyer led first (or took the lock before the crashing leader); again", attempt)
	}
	t.Fatal("in 10 attempts the --no-sync buyer never led after the crash")
}

// noSyncLeaderAfterCrash is one attempt; it reports whether the --no-sync
// buyer was the one that completed the crashed leader's batch.
func noSyncLeaderAfterCrash(t *testing.T) bool {
	path := storetest.NewSale(t, 100, 1)
	reg := region(t, path)
	unlock := storetest.HoldLock(t, path+".lock")
	leader := storetest.Child(t, "crash", path, storetest.Crash+"="+seam.JournalSync)
	storetest.StartChild(t, leader)
	storetest.WaitFor(t, 10*time.Second, "successor", func() bool { return reg.Successor() == int32(leader.Process.Pid) })
	cmds := storetest.Buyers(t, path, 3, 1, storetest.Safety+"=30s") // durable; woken by the next leader
	storetest.WaitFor(t, 10*time.Second, "four pending requests", func() bool { return reg.Pending() == 4 })
	unlock()
	if err := leader.Wait(); !storetest.KilledBySIGKILL(err) {
		if strings.Contains(fmt.Sprint(leader.Stderr), "never reached") {
			// A buyer's first try of the lock, made just as the test let
			// go, took it before the leader in flock(2): it led the batch,
			// the leader's own request among them. Another attempt.
			storetest.WaitAll(cmds, 10*time.Second)
			return false
		}
		t.Fatalf("leader: %v, want death by SIGKILL (stderr: %s)", err, leader.Stderr)
	}
	var syncs atomic.Int32
	storetest.SetFault(t, func(step string) error {
		if step == seam.JournalSync {
			syncs.Add(1)
		}
		return nil
	})
	var completed bool
	warn := func(note string) {
		completed = completed || strings.Contains(note, "cut what a crashed buyer never committed")
	}
	if _, err := store.Open(path, store.Options{NoSync: true, Warn: warn}).Buy(context.Background(), "nosync", 1); err != nil {
		t.Fatal(err)
	}
	seam.Fault = func(string) error { return nil }
	if completed && syncs.Load() == 0 {
		t.Fatal("the --no-sync leader committed durable requests without an fsync")
	}
	if n := storetest.WaitAll(cmds, 10*time.Second); n != len(cmds) {
		t.Fatalf("%d buyers still waiting", len(cmds)-n)
	}
	storetest.MustBalance(t, path)
	return completed
}

// region returns the group commit region of the sale at path, skipping the
// test where group commit is not available.
func region(t *testing.T, path string) *group.Region {
	t.Helper()
	reg, err := group.Open(path + ".journal")
	if err != nil {
		t.Skipf("group commit is not available here: %v", err)
	}
	return reg
}

func TestMain(m *testing.M) { storetest.Main(m, nil) }
