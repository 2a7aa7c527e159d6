package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/lock"
	"github.com/ticketd/ticket/ticket"
)

// buyer is one ticket process started by a test.
type buyer struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	code           int
}

// startBuyers starts n independent ticket processes running "buy" on path,
// all held at a gate until every one of them has been started, then let
// go at once. Each is killed by pid when the test ends, whatever happens.
func startBuyers(t *testing.T, path string, n int, extra ...string) []*buyer {
	t.Helper()
	gate := filepath.Join(t.TempDir(), "gate")
	g := flock.New(gate)
	if err := g.Lock(); err != nil {
		t.Fatal(err)
	}
	buyers := make([]*buyer, n)
	for i := range buyers {
		b := &buyer{name: fmt.Sprintf("person%d", i)}
		args := append([]string{"buy", "-f", path, "--buyer", b.name, "--json"}, extra...)
		b.cmd = ticketCmd(args...)
		b.cmd.Env = append(b.cmd.Env, "TICKET_TEST_GATE="+gate)
		b.cmd.Stdout, b.cmd.Stderr = &b.stdout, &b.stderr
		if err := b.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.cmd.Process.Kill(); _ = b.cmd.Wait() })
		buyers[i] = b
	}
	waitAtGate(t, buyers)
	if err := g.Unlock(); err != nil {
		t.Fatal(err)
	}
	for _, b := range buyers {
		err := b.cmd.Wait()
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			b.code = exitErr.ExitCode()
		case err != nil:
			t.Fatalf("%s: %v", b.name, err)
		}
	}
	return buyers
}

// waitAtGate waits (up to 30 s) until every buyer is blocked on the gate,
// as /proc/locks shows, so that releasing it starts a real race.
func waitAtGate(t *testing.T, buyers []*buyer) {
	t.Helper()
	if _, err := os.Stat("/proc/locks"); err != nil {
		t.Logf("no /proc/locks (%v): starting without waiting at the gate", err)
		return
	}
	pids := make([]int, len(buyers))
	for i, b := range buyers {
		pids[i] = b.cmd.Process.Pid
	}
	waitBlocked(t, pids, 30*time.Second, "reached the gate in 30s")
}

type buyResult struct {
	Buyer  string `json:"buyer"`
	Bought bool   `json:"bought"`
	Left   int64  `json:"left"`
}

// tally counts the buyers told they got a ticket, and fails the test on
// any outcome other than bought (0) or sold out (3).
func tally(t *testing.T, buyers []*buyer) (winners map[string]bool, soldOut int) {
	t.Helper()
	winners = make(map[string]bool)
	for _, b := range buyers {
		var r buyResult
		if err := json.Unmarshal(b.stdout.Bytes(), &r); err != nil {
			t.Fatalf("%s (exit %d): stdout %q: %v; stderr %s", b.name, b.code, b.stdout.String(), err, b.stderr.String())
		}
		switch {
		case b.code == exitOK && r.Bought && r.Buyer == b.name:
			if winners[b.name] {
				t.Errorf("%s reported twice", b.name)
			}
			winners[b.name] = true
		case b.code == exitSoldOut && !r.Bought:
			soldOut++
		default:
			t.Fatalf("%s: exit %d, stdout %s, stderr %s", b.name, b.code, b.stdout.String(), b.stderr.String())
		}
	}
	return winners, soldOut
}

// TestRaceExactlyAsManyWinAsTickets: 60 independent processes (30 by
// default), released together, buy from 20 tickets (10). Exactly that many
// win, 0 are left, the journal holds each winner once and no loser, and
// the books balance.
func TestRaceExactlyAsManyWinAsTickets(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { raceExactly(t, be.spec(t)) })
	}
}

func raceExactly(t *testing.T, path string) {
	tickets, buyers := size(10, 20), size(30, 60)
	s := openSpec(t, path)
	if _, _, err := s.Init(context.Background(), int64(tickets), store.Create); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	bs := startBuyers(t, path, buyers)
	t.Logf("%d buyers done in %v after the gate opened", buyers, time.Since(start))
	winners, soldOut := tally(t, bs)
	if len(winners) != tickets || soldOut != buyers-tickets {
		t.Fatalf("got %d winners and %d sold out, want %d and %d", len(winners), soldOut, tickets, buyers-tickets)
	}
	state, err := s.Read()
	if err != nil {
		t.Fatal(err)
	}
	if state.Left() != 0 || state.Sold() != int64(tickets) || state.Version() != int64(tickets) {
		t.Errorf("state after the race = %+v, want 0 left, %d sold at version %d", state, tickets, tickets)
	}
	inJournal := make(map[string]bool)
	for sale, err := range s.Sales() {
		if err != nil {
			t.Fatal(err)
		}
		if sale.Kind != ticket.KindSale {
			continue // the init record
		}
		if inJournal[sale.Buyer] {
			t.Errorf("%s got a ticket twice", sale.Buyer)
		}
		inJournal[sale.Buyer] = true
		if !winners[sale.Buyer] {
			t.Errorf("journal has a sale to %s, who was told sold out", sale.Buyer)
		}
	}
	if len(inJournal) != tickets {
		t.Errorf("journal has %d sales, want %d", len(inJournal), tickets)
	}
	r, err := s.Verify(context.Background())
	if err != nil || !r.Balanced() {
		t.Errorf("verify: %v %v", err, r.Problems)
	}
}

// TestRaceWithoutLockLosesUpdates is the negative control: the same race
// with the lock switched off (the hidden --unsafe-no-lock) must oversell,
// which proves the race test above could fail. It is a race, so it is
// repeated until it shows, up to a bound.
func TestRaceWithoutLockLosesUpdates(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { raceUnlocked(t, be.spec) })
	}
}

func raceUnlocked(t *testing.T, spec func(*testing.T) string) {
	const attempts = 10
	tickets, buyers := size(10, 20), size(30, 60)
	for attempt := 1; attempt <= attempts; attempt++ {
		path := spec(t)
		s := openSpec(t, path)
		if _, _, err := s.Init(context.Background(), int64(tickets), store.Create); err != nil {
			t.Fatal(err)
		}
		winners, _ := tally(t, startBuyers(t, path, buyers, "--unsafe-no-lock"))
		state, err := s.Read()
		if err != nil {
			t.Fatal(err)
		}
		sold := int64(tickets) - state.Left()
		t.Logf("attempt %d without the lock: %d buyers told they got a ticket, the file says %d sold", attempt, len(winners), sold)
		if int64(len(winners)) > sold {
			return // lost updates: more winners than the file counts
		}
	}
	t.Fatalf("no lost update in %d unlocked races: the race test cannot tell a lock from none", attempts)
}

// TestSignalWhileWaiting: a buyer waiting for the lock that gets SIGINT,
// SIGTERM or SIGHUP exits 130, 143 or 129 and changes nothing.
func TestSignalWhileWaiting(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		want int
	}{{syscall.SIGINT, exitSIGINT}, {syscall.SIGTERM, exitSIGTERM}, {syscall.SIGHUP, exitSIGHUP}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ticket.json")
			s := store.Open(path, store.Options{})
			if _, _, err := s.Init(context.Background(), 5, store.Create); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			journalBefore, _ := os.ReadFile(s.JournalPath())
			unlock, err := lock.Lock(context.Background(), s.LockPath(), 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unlock()
			b := &buyer{name: "waiter"}
			b.cmd = ticketCmd("buy", "-f", path, "--buyer", b.name)
			b.cmd.Stdout, b.cmd.Stderr = &b.stdout, &b.stderr
			if err := b.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.cmd.Process.Kill(); _ = b.cmd.Wait() })
			waitAtGate(t, []*buyer{b})
			if err := b.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			err = b.cmd.Wait()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != tc.want {
				t.Fatalf("buyer exited with %v, want status %d; stderr %s", err, tc.want, b.stderr.String())
			}
			if b.stdout.Len() != 0 || !strings.Contains(b.stderr.String(), "interrupted while waiting for the lock; nothing was changed") {
				t.Errorf("stdout %q, stderr %q", b.stdout.String(), b.stderr.String())
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Errorf("ticket file changed: %s -> %s", before, after)
			}
			if journalAfter, _ := os.ReadFile(s.JournalPath()); !bytes.Equal(journalBefore, journalAfter) {
				t.Errorf("journal changed: %q -> %q", journalBefore, journalAfter)
			}
		})
	}
}

// TestWaitGivesUpAfterD: while another process holds the lock, --nowait
// exits 4 at once and --wait D exits 4 after waiting at least D (the
// lower bound is the behaviour; how much longer it took is only logged).
func TestWaitGivesUpAfterD(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ticket.json")
	s := store.Open(path, store.Options{})
	if _, _, err := s.Init(context.Background(), 5, store.Create); err != nil {
		t.Fatal(err)
	}
	unlock, err := lock.Lock(context.Background(), s.LockPath(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for _, tc := range []struct {
		flags []string
		least time.Duration
	}{
		{[]string{"--nowait"}, 0},
		{[]string{"--wait", "100ms"}, 100 * time.Millisecond},
		{[]string{"--wait", "0.3"}, 300 * time.Millisecond},
	} {
		cmd := ticketCmd(append([]string{"buy", "-f", path}, tc.flags...)...)
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitLocked {
			t.Fatalf("buy %v: %v, want exit %d", tc.flags, err, exitLocked)
		}
		if took < tc.least {
			t.Errorf("buy %v gave up after %v, before %v", tc.flags, took, tc.least)
		}
		t.Logf("buy %v gave up after %v", tc.flags, took)
	}
}
