package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ticketd/ticket/store/lock"
	"github.com/ticketd/ticket/ticket"
)

// signalRounds is how many rounds the signal loops run: the real
// size with TICKET_TEST_LONG=1 (CI), a few by default, and as many as
// TICKET_KILL_ROUNDS says for a longer soak.
func signalRounds(t *testing.T) int {
	if s := os.Getenv("TICKET_KILL_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("TICKET_KILL_ROUNDS=%q: want a whole number from 1", s)
		}
		return n
	}
	return size(2, 30)
}

// loopStats are the figures a signal loop reports.
type loopStats struct {
	rounds, buyers, signalled, died, bought, interrupted, tails int
	queued                                                      int // buyers seen blocked on the lock before it was released
	holderKills                                                 int // signals sent to the lock's holder
	whileWaiting                                                int // signals sent while every buyer waited for the lock
}

// TestKill9Loop runs rounds of 24 buyer processes (16 by default) that
// queue on the lock
// (the test holds it while they start) and kills a random half of them
// with SIGKILL at random moments after it lets go: while they wait for the
// lock, hold it, write; three more SIGKILLs per round go to whoever holds
// the lock at that moment, a buyer in the middle of its commit. After each round: ticket verify exits 0, the
// ticket file parses, every buyer that exited 0 is in the journal with the
// sale it reported, the next buy recovers (cutting what a killed buyer
// left, and saying so) and leaves no PATH.tmp.
func TestKill9Loop(t *testing.T) {
	st := signalLoop(t, signalRounds(t), size(16, 24), []syscall.Signal{syscall.SIGKILL}, nil)
	t.Logf("kill -9 loop: %d rounds of %d buyers (%d seen queued on the lock), %d SIGKILLs delivered (%d while all waited, %d to the lock holder), %d buyers died of them, %d sales reported, %d repairs by the next buyer (a crashed buyer's committed sale completed or its unfinished line cut)",
		st.rounds, st.buyers, st.queued, st.signalled, st.whileWaiting, st.holderKills, st.died, st.bought, st.tails)
	if st.died == 0 {
		t.Fatal("no buyer was killed: the loop proved nothing")
	}
}

// TestSignalLoop does the same with SIGINT and SIGTERM, which a buyer
// handles: one that exits 130 or 143 bought nothing, one that exits 0 is in
// the journal, and no file is ever left half-written.
func TestSignalLoop(t *testing.T) {
	st := signalLoop(t, signalRounds(t), size(16, 24), []syscall.Signal{syscall.SIGINT, syscall.SIGTERM}, nil)
	t.Logf("signal loop: %d rounds of %d buyers (%d seen queued on the lock), %d SIGINT/SIGTERM delivered (%d while all waited, %d to the lock holder), %d exited 130/143 with nothing bought, %d died of the signal before handling it, %d sales reported",
		st.rounds, st.buyers, st.queued, st.signalled, st.whileWaiting, st.holderKills, st.interrupted, st.died, st.bought)
}

// TestKill9LoopControl is the negative control of the loop's checks: the
// same loop with the lock and journal switched off (--unsafe-no-lock)
// must be caught by them (buyers that report a sale the journal does not
// have, tickets sold twice, books that do not balance).
func TestKill9LoopControl(t *testing.T) {
	var failures []string
	signalLoop(t, 1, 24, []syscall.Signal{syscall.SIGKILL}, func(format string, args ...any) {
		failures = append(failures, fmt.Sprintf(format, args...))
	}, "--unsafe-no-lock")
	if len(failures) == 0 {
		t.Fatal("the loop's checks passed a sale made without the lock and the journal")
	}
	t.Logf("without the lock, the checks found: %s", failures[0])
}

// signalLoop runs the rounds and checks them. fail reports a broken
// invariant (t.Fatalf if nil); extra flags go to every buyer.
func signalLoop(t *testing.T, rounds, buyers int, sigs []syscall.Signal, fail func(string, ...any), extra ...string) loopStats {
	t.Helper()
	if fail == nil {
		fail = func(format string, args ...any) { t.Helper(); t.Fatalf(format, args...) }
	}
	path := newTicketFile(t, strconv.Itoa(rounds*(buyers+1)+10))
	st := loopStats{rounds: rounds, buyers: buyers}
	spread := 100 * time.Millisecond // how long a round took last time: kills land within it
	locked := len(extra) == 0        // the unsafe control's buyers take no lock
	for round := 1; round <= rounds; round++ {
		// The test holds the lock while the buyers start, so that they
		// queue behind it and the signals land while they wait, hold the
		// lock and write, not while they start.
		var unlock func()
		if locked {
			var err error
			if unlock, err = lock.Lock(context.Background(), path+".lock", 0); err != nil {
				t.Fatal(err)
			}
		}
		cmds := make([]*exec.Cmd, buyers)
		for i := range cmds {
			args := append([]string{"buy", "-f", path, "--json", "--buyer", fmt.Sprintf("r%d-b%d", round, i)}, extra...)
			cmds[i] = capture(ticketCmd(args...))
			if err := cmds[i].Start(); err != nil {
				t.Fatal(err)
			}
			cmd := cmds[i]
			t.Cleanup(func() { _ = cmd.Process.Kill() })
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		if locked {
			st.queued += waitQueued(cmds)
			// A quarter of the buyers get their signal while all of them
			// wait (in flock(2), or asleep in a group commit slot, or as
			// the successor that will commit for the others).
			for _, cmd := range cmds {
				if rand.IntN(4) == 0 && cmd.Process.Signal(sigs[rand.IntN(len(sigs))]) == nil {
					st.signalled++
					st.whileWaiting++
				}
			}
			unlock()
		}
		start := time.Now()
		for _, cmd := range cmds {
			if rand.IntN(3) == 0 {
				continue
			}
			sig := sigs[rand.IntN(len(sigs))]
			delay := rand.N(spread)
			wg.Go(func() {
				time.Sleep(delay)
				if cmd.Process.Signal(sig) == nil {
					mu.Lock()
					st.signalled++
					mu.Unlock()
				}
			})
		}
		if locked {
			// Also signal whoever holds the lock at random moments: a
			// buyer in the middle of its commit.
			window := spread
			for range 3 {
				sig := sigs[rand.IntN(len(sigs))]
				delay := rand.N(spread)
				wg.Go(func() {
					// From a random moment on, the first buyer seen holding
					// the lock: with group commit, a leader committing the
					// batch of every buyer asleep behind it.
					time.Sleep(delay)
					for until := time.Now().Add(window); time.Now().Before(until); {
						pid := lockHolder(path + ".lock")
						for _, cmd := range cmds {
							if cmd.Process.Pid == pid && syscall.Kill(pid, sig) == nil {
								mu.Lock()
								st.signalled++
								st.holderKills++
								mu.Unlock()
								return
							}
						}
					}
				})
			}
		}
		outs := make([]outcome, buyers)
		for i, cmd := range cmds {
			outs[i] = finish(t, cmd, cmd.Wait())
		}
		took := time.Since(start) // the buyers', not the signallers'
		wg.Wait()
		spread = max(took, 10*time.Millisecond)
		checkRound(t, path, round, outs, &st, fail)
	}
	return st
}

// checkRound checks the invariants after a round of buyers.
func checkRound(t *testing.T, path string, round int, outs []outcome, st *loopStats, fail func(string, ...any)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ticket.Parse(data); err != nil {
		fail("round %d: the ticket file does not parse: %v: %q", round, err, data)
		return
	}
	if o := runCaptured(t, "verify", "-f", path); o.code != 0 {
		fail("round %d: verify exits %d: %s%s", round, o.code, o.stdout, o.stderr)
		return
	}
	sales := journal(t, path)
	for i, o := range outs {
		buyer := fmt.Sprintf("r%d-b%d", round, i)
		switch {
		case o.code == 0:
			var r struct {
				Bought bool  `json:"bought"`
				Seq    int64 `json:"seq"`
			}
			if err := json.Unmarshal([]byte(o.stdout), &r); err != nil || !r.Bought {
				fail("round %d: %s exited 0 but reported %q", round, buyer, o.stdout)
				return
			}
			if s, ok := sales[buyer]; !ok || s.Seq != r.Seq {
				fail("round %d: %s reported sale #%d, but the journal has %+v (ok=%v)", round, buyer, r.Seq, s, ok)
				return
			}
			st.bought++
		case o.code == exitSIGINT || o.code == exitSIGTERM:
			if _, ok := sales[buyer]; ok {
				fail("round %d: %s exited %d (interrupted, nothing bought) but the journal has its sale", round, buyer, o.code)
				return
			}
			st.interrupted++
		case o.code == -1:
			st.died++ // either outcome is allowed; verify and the journal decide
		default:
			fail("round %d: %s exited %d: %s", round, buyer, o.code, o.stderr)
			return
		}
	}
	// The next buyer recovers whatever a killed one left.
	o := runCaptured(t, "buy", "-f", path, "--buyer", fmt.Sprintf("check%d", round))
	if o.code != 0 {
		fail("round %d: the buy after the round exits %d: %s", round, o.code, o.stderr)
		return
	}
	if strings.Contains(o.stderr, "cut what a crashed buyer never committed") || strings.Contains(o.stderr, "cut an unfinished line") {
		st.tails++
	}
	if _, err := os.Stat(path + ".tmp"); err == nil {
		fail("round %d: %s.tmp is left after the next buy", round, path)
		return
	}
	if o := runCaptured(t, "verify", "-f", path); o.code != 0 {
		fail("round %d: verify after the next buy exits %d: %s", round, o.code, o.stderr)
	}
}

// waitQueued waits (up to a few seconds: it only shapes the scenario) until
// the kernel shows the buyers blocked on the lock in /proc/locks, and
// returns how many were.
func waitQueued(cmds []*exec.Cmd) int {
	n := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		n = 0
		blocked := lockWaiters()
		for _, cmd := range cmds {
			if blocked[cmd.Process.Pid] {
				n++
			}
		}
		if n == len(cmds) {
			break
		}
	}
	return n
}

// lockHolder returns the pid that holds the flock on lockPath, from
// /proc/locks, or 0.
func lockHolder(lockPath string) int {
	var st syscall.Stat_t
	if syscall.Stat(lockPath, &st) != nil {
		return 0
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(locks), "\n") {
		f := strings.Fields(line)
		// 1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF (waiters have "->" after the number)
		if len(f) < 6 || f[1] != "FLOCK" || !strings.HasSuffix(f[5], fmt.Sprintf(":%d", st.Ino)) {
			continue
		}
		pid, _ := strconv.Atoi(f[4])
		return pid
	}
	return 0
}
