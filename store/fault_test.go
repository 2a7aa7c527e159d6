package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/store/internal/storetest"
)

// injector fails the nth call of the fault seam (counting from 1), once or,
// if sticky, every call from then on, as SQLite's own I/O error tests do.
type injector struct {
	mu     sync.Mutex
	n      int
	sticky bool
	calls  int
	hit    []string // the steps that failed
}

func (in *injector) fault(step string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.calls++
	if in.calls == in.n || (in.sticky && in.calls > in.n) {
		in.hit = append(in.hit, step)
		return fmt.Errorf("%s: %w", step, storetest.ErrInjected)
	}
	return nil
}

// TestFaultInjection makes the Nth file operation of a buy fail, for N
// from 1 up until a buy completes without reaching the fault, once and from
// then on, from a clean sale and from one a crashed buyer left (a sale
// committed to the journal but not to the ticket file, half a line, a
// stale PATH.Tmp). After every N: the buy reported the error; nothing
// changed (beyond completing or cutting what the crashed buyer left) or
// the sale was committed whole (only as store.ErrUnconfirmed, when taking it
// back failed too); Verify balances; and the next buy succeeds.
func TestFaultInjection(t *testing.T) {
	leftovers := []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"clean", func(t *testing.T, path string) {}},
		{"uncommitted-line", func(t *testing.T, path string) {
			// Written this boot by a buyer that died before it replaced
			// the ticket file: never committed, cut by the next buy.
			st, err := store.Open(path, store.Options{}).Read()
			if err != nil {
				t.Fatal(err)
			}
			storetest.AppendFile(t, path+".journal", storetest.UncommittedLine(t, st, 1))
		}},
		{"line-from-before-a-restart", func(t *testing.T, path string) {
			// Committed before a power cut took the ticket file's rename:
			// rolled forward by the next buy.
			st, err := store.Open(path, store.Options{}).Read()
			if err != nil {
				t.Fatal(err)
			}
			storetest.AppendFile(t, path+".journal", storetest.UncommittedLine(t, st, 1))
			storetest.MarkOtherBoot(t, path+".journal")
		}},
		{"half-line", func(t *testing.T, path string) {
			st, err := store.Open(path, store.Options{}).Read()
			if err != nil {
				t.Fatal(err)
			}
			line := storetest.UncommittedLine(t, st, 1)
			storetest.AppendFile(t, path+".journal", line[:len(line)/2])
		}},
		{"stale-tmp", func(t *testing.T, path string) {
			if err := os.WriteFile(path+".tmp", []byte(`{"count": 1`), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, sticky := range []bool{false, true} {
		for _, lo := range leftovers {
			name := fmt.Sprintf("once/%s", lo.name)
			if sticky {
				name = fmt.Sprintf("from-then-on/%s", lo.name)
			}
			t.Run(name, func(t *testing.T) {
				steps := map[string]bool{}
				for n := 1; ; n++ {
					if n > 100 {
						t.Fatal("no buy completed in 100 tries")
					}
					done := faultRun(t, n, sticky, lo.setup, steps)
					if done {
						t.Logf("%d file operations per buy; steps failed: %d", n-1, len(steps))
						break
					}
				}
			})
		}
	}
}

// faultRun makes one faulted buy at the nth file operation and checks its
// outcome. It returns true when the buy never reached the fault.
func faultRun(t *testing.T, n int, sticky bool, setup func(*testing.T, string), steps map[string]bool) bool {
	t.Helper()
	path := storetest.NewSale(t, 10, 2)
	setup(t, path)
	before := storetest.TakeSnapshot(t, path)
	beforeState, err := store.Open(path, store.Options{}).Read()
	if err != nil {
		t.Fatal(err)
	}
	in := &injector{n: n, sticky: sticky}
	old := seam.Fault
	seam.Fault = in.fault
	var notes []string
	r, err := store.Open(path, store.Options{Warn: func(n string) { notes = append(notes, n) }}).Buy(context.Background(), "buyer", 3)
	seam.Fault = old
	if len(in.hit) == 1 && in.hit[0] == seam.TempRemove && err == nil {
		// Removing a stale PATH.Tmp is housekeeping: its failure is a
		// warning, and the buy goes on (replacing PATH.Tmp itself).
		if len(notes) == 0 || !strings.Contains(notes[len(notes)-1], storetest.ErrInjected.Error()) {
			t.Fatalf("n=%d: the fault at %s was not reported: notes %q", n, seam.TempRemove, notes)
		}
		steps[seam.TempRemove] = true
		storetest.MustBalance(t, path)
		return false
	}
	if len(in.hit) == 0 {
		if err != nil {
			t.Fatalf("n=%d: buy without a fault failed: %v", n, err)
		}
		return true
	}
	step := in.hit[0]
	steps[step] = true
	if err == nil {
		t.Fatalf("n=%d: the fault at %s was not reported", n, step)
	}
	if !errors.Is(err, storetest.ErrInjected) {
		t.Fatalf("n=%d: the fault at %s came back as %v", n, step, err)
	}
	after := storetest.TakeSnapshot(t, path)
	if _, err := storetest.TicketFile(path); err != nil {
		t.Fatalf("n=%d: after a fault at %s the ticket file does not parse: %v", n, step, err)
	}
	state, rerr := store.Open(path, store.Options{}).Read()
	if rerr != nil {
		t.Fatalf("n=%d: after a fault at %s: read: %v", n, step, rerr)
	}
	rep := storetest.MustBalance(t, path)
	undoFailed := slices.Contains(in.hit, seam.JournalUndo)
	// The journal's records, without the padding it is grown with ahead
	// of them: a cut writes padding over what it cuts.
	records := func(j []byte) []byte { return bytes.TrimRight(j, " ") }
	if rep.Pending != "" && !bytes.Equal(records(after.Journal), records(before.Journal)) && !undoFailed {
		t.Errorf("n=%d: the buy that failed at %s left a tail: %s", n, step, rep.Pending)
	}
	if beforeState.Version() == 0 {
		t.Fatal("the sale must start with a sale made")
	}
	committed := state.Version() != beforeState.Version()
	switch {
	case committed:
		// The ticket file is replaced last: once it shows the sale, no
		// step of the buy is left to fail.
		t.Fatalf("n=%d: the fault at %s committed the sale but returned %v", n, step, err)
	case errors.Is(err, store.ErrUnconfirmed):
		// Taking the sale's line back failed too: it stays beyond the
		// ticket file, not counted in this boot (the next buy cuts it),
		// and it would be rolled forward after a restart: its outcome is
		// not confirmed either way, and the receipt says what it was.
		want, _ := beforeState.Take(3)
		if !undoFailed || r.Sale.Seq != want.Version() || !strings.Contains(rep.Pending, "never committed") {
			t.Fatalf("n=%d: store.ErrUnconfirmed for a fault at %s: receipt sale #%d (want #%d), undo failed %v, pending %q", n, step, r.Sale.Seq, want.Version(), undoFailed, rep.Pending)
		}
	default:
		if r.Sale.Seq != 0 {
			t.Fatalf("n=%d: failed buy returned a sale #%d", n, r.Sale.Seq)
		}
		// The ticket file may have been completed from the journal, and
		// nothing else: it is unchanged or it is exactly what Read saw.
		if file, _ := storetest.TicketFile(path); !bytes.Equal(after.Ticket, before.Ticket) && (file.Version() != beforeState.Version() || file.Left() != beforeState.Left()) {
			t.Fatalf("n=%d: fault at %s changed the ticket file:\n%s\nto\n%s", n, step, before.Ticket, after.Ticket)
		}
		// The journal may have lost what a crashed buyer never committed,
		// nothing else.
		if !bytes.HasPrefix(before.Journal, records(after.Journal)) || rep.Sales != beforeState.Version() {
			t.Fatalf("n=%d: fault at %s changed the committed journal:\n%s\nto\n%s", n, step, before.Journal, after.Journal)
		}
	}
	// Buying continues, and leaves no temporary file.
	if _, err := store.Open(path, store.Options{}).Buy(context.Background(), "next", 1); err != nil {
		t.Fatalf("n=%d: the buy after a fault at %s failed: %v", n, step, err)
	}
	storetest.MustBalance(t, path)
	if storetest.TakeSnapshot(t, path).Tmp {
		t.Fatalf("n=%d: %s.Tmp left after the next buy", n, path)
	}
	return false
}

// TestFaultEveryStepReached checks that a buy after a crash (a sale
// committed to the journal only, then an unfinished line, and a stale
// PATH.Tmp) goes through every step of the seam, in order, so that the
// injection loop reaches them all; a step added later without a fault
// call, or a renamed one, shows here. (journal.undo runs only after a
// failure: the from-then-on loop reaches it. temp.sync and dir.sync belong
// to Init and Restore, which write the ticket file durably.)
func TestFaultEveryStepReached(t *testing.T) {
	path := storetest.NewSale(t, 10, 1)
	st, err := store.Open(path, store.Options{}).Read()
	if err != nil {
		t.Fatal(err)
	}
	storetest.AppendFile(t, path+".journal", storetest.UncommittedLine(t, st, 1))
	storetest.AppendFile(t, path+".journal", []byte(`{"seq": 3, "buy`))
	if err := os.WriteFile(path+".tmp", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var seen []string
	storetest.SetFault(t, func(step string) error { seen = append(seen, step); return nil })
	if _, err := store.Open(path, store.Options{}).Buy(context.Background(), "b", 1); err != nil {
		t.Fatal(err)
	}
	want := []string{seam.JournalOpen, seam.Read, seam.JournalCut, seam.TempRemove, seam.JournalWrite, seam.JournalSync, seam.TempCreate, seam.TempWrite, seam.Rename}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Fatalf("steps %q, want %q", seen, want)
	}
	seen = nil
	if _, _, err := store.Open(path, store.Options{}).Init(context.Background(), 5, store.Replace); err != nil {
		t.Fatal(err)
	}
	// The old journal is opened (and locked) to be archived, then the new one.
	want = []string{seam.Read, seam.Read, seam.JournalOpen, seam.JournalOpen, seam.DirSync, seam.JournalWrite, seam.JournalSync, seam.TempCreate, seam.TempWrite, seam.TempSync, seam.Rename, seam.DirSync}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Fatalf("init: steps %q, want %q", seen, want)
	}
}

// TestUndoFailureIsUnconfirmed: when the ticket file cannot be replaced
// after the sale's journal line was fsynced, and taking the line back
// fails too, the buy returns store.ErrUnconfirmed (exit 6 in the command) with
// the receipt: the line is beyond the ticket file, so in this boot it was
// never committed (Read does not count it, Verify says so, and the next
// buy cuts it), while after a restart it would be rolled forward as a sale
// (the next buy completes it). When taking it back works, nothing was sold.
func TestUndoFailureIsUnconfirmed(t *testing.T) {
	for _, c := range []struct {
		undoFails, reboot bool
	}{{false, false}, {true, false}, {true, true}} {
		t.Run(fmt.Sprintf("undo-fails=%v/restart=%v", c.undoFails, c.reboot), func(t *testing.T) {
			path := storetest.NewSale(t, 5, 1)
			storetest.SetFault(t, func(step string) error {
				if step == seam.TempCreate || (c.undoFails && step == seam.JournalUndo) {
					return storetest.ErrInjected
				}
				return nil
			})
			r, err := store.Open(path, store.Options{}).Buy(context.Background(), "alice", 2)
			seam.Fault = func(string) error { return nil }
			if !errors.Is(err, storetest.ErrInjected) || errors.Is(err, store.ErrUnconfirmed) != c.undoFails {
				t.Fatalf("got %v, want the injected error, store.ErrUnconfirmed: %v", err, c.undoFails)
			}
			if c.undoFails && (r.Sale.Seq != 2 || r.Sale.Buyer != "alice" || r.State.Left() != 2) {
				t.Fatalf("receipt %+v, want sale #2 to alice, 2 left", r)
			}
			if !c.undoFails && r.Sale.Seq != 0 {
				t.Fatalf("receipt %+v, want nothing sold", r)
			}
			if c.reboot {
				store.SimulateReboot(t)
			}
			st, err := store.Open(path, store.Options{}).Read()
			if err != nil {
				t.Fatal(err)
			}
			stands := c.undoFails && c.reboot
			wantLeft, wantVersion := int64(4), int64(1)
			if stands {
				wantLeft, wantVersion = 2, 2
			}
			if st.Left() != wantLeft || st.Version() != wantVersion {
				t.Fatalf("Read: %+v; want %d left at version %d", st, wantLeft, wantVersion)
			}
			if rep := storetest.MustBalance(t, path); (rep.Pending != "") != c.undoFails {
				t.Fatalf("verify: pending %q", rep.Pending)
			}
			if _, err := store.Open(path, store.Options{}).Buy(context.Background(), "bob", 1); err != nil {
				t.Fatal(err)
			}
			if file, err := storetest.TicketFile(path); err != nil || file.Version() != wantVersion+1 || file.Left() != wantLeft-1 {
				t.Fatalf("the ticket file after the next buy: %+v, %v; want version %d, %d left", file, err, wantVersion+1, wantLeft-1)
			}
			if rep := storetest.MustBalance(t, path); rep.Pending != "" || rep.Sales != wantVersion+1 {
				t.Fatalf("after the next buy: %d sales, pending %q", rep.Sales, rep.Pending)
			}
		})
	}
}
