package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ticketd/ticket/ticket"
)

// errInjected is the I/O error the fault seam returns in these tests.
var errInjected = errors.New("injected I/O error")

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
		return fmt.Errorf("%s: %w", step, errInjected)
	}
	return nil
}

// setFault replaces the seam for the rest of the test.
func setFault(t *testing.T, f func(step string) error) {
	t.Helper()
	old := fault
	fault = f
	t.Cleanup(func() { fault = old })
}

// newSale creates a sale of total tickets in a fresh directory and makes
// the given buys, returning the ticket file's path.
func newSale(t *testing.T, total int64, buys ...int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tickets.json")
	s := Open(path, Options{})
	if _, _, err := s.Init(context.Background(), total, false); err != nil {
		t.Fatal(err)
	}
	for i, q := range buys {
		if _, err := s.Buy(context.Background(), fmt.Sprintf("setup%d", i+1), q); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// snapshot is the content of a sale's files.
type snapshot struct {
	ticket, journal []byte
	tmp             bool // PATH.tmp exists
}

func takeSnapshot(t *testing.T, path string) snapshot {
	t.Helper()
	tk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j, err := os.ReadFile(path + ".journal")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	_, err = os.Stat(path + ".tmp")
	return snapshot{ticket: tk, journal: j, tmp: err == nil}
}

// mustBalance fails the test unless Verify finds the books balanced, and
// returns its report.
func mustBalance(t *testing.T, path string) Report {
	t.Helper()
	r, err := Open(path, Options{}).Verify(context.Background())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !r.Balanced() {
		t.Fatalf("verify: the books do not balance: %q", r.Problems)
	}
	return r
}

// uncommittedLine is a journal line for the sale after state's version, as
// a buyer killed after appending it leaves behind: whole, it is a committed
// sale the ticket file does not show yet; cut short, it was never committed.
func uncommittedLine(t *testing.T, state ticket.State, qty int64) []byte {
	t.Helper()
	next, err := state.Take(qty)
	if err != nil {
		t.Fatal(err)
	}
	return ticket.Sale{Seq: next.Version, Buyer: "crashed", Qty: qty, Left: next.Left, PID: 1, Time: time.Unix(0, 0)}.AppendLine(nil)
}

// TestFaultInjection makes the Nth file operation of a buy fail, for N
// from 1 up until a buy completes without reaching the fault, once and from
// then on, from a clean sale and from one a crashed buyer left (a sale
// committed to the journal but not to the ticket file, half a line, a
// stale PATH.tmp). After every N: the buy reported the error; nothing
// changed (beyond completing or cutting what the crashed buyer left) or
// the sale was committed whole (only as ErrUnconfirmed, when taking it
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
			st, err := Open(path, Options{}).Read()
			if err != nil {
				t.Fatal(err)
			}
			appendFile(t, path+".journal", uncommittedLine(t, st, 1))
		}},
		{"line-from-before-a-restart", func(t *testing.T, path string) {
			// Committed before a power cut took the ticket file's rename:
			// rolled forward by the next buy.
			st, err := Open(path, Options{}).Read()
			if err != nil {
				t.Fatal(err)
			}
			appendFile(t, path+".journal", uncommittedLine(t, st, 1))
			markOtherBoot(t, path+".journal")
		}},
		{"half-line", func(t *testing.T, path string) {
			st, err := Open(path, Options{}).Read()
			if err != nil {
				t.Fatal(err)
			}
			line := uncommittedLine(t, st, 1)
			appendFile(t, path+".journal", line[:len(line)/2])
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
	path := newSale(t, 10, 2)
	setup(t, path)
	before := takeSnapshot(t, path)
	beforeState, err := Open(path, Options{}).Read()
	if err != nil {
		t.Fatal(err)
	}
	in := &injector{n: n, sticky: sticky}
	old := fault
	fault = in.fault
	var notes []string
	r, err := Open(path, Options{Warn: func(n string) { notes = append(notes, n) }}).Buy(context.Background(), "buyer", 3)
	fault = old
	if len(in.hit) == 1 && in.hit[0] == stepTempRemove && err == nil {
		// Removing a stale PATH.tmp is housekeeping: its failure is a
		// warning, and the buy goes on (replacing PATH.tmp itself).
		if len(notes) == 0 || !strings.Contains(notes[len(notes)-1], errInjected.Error()) {
			t.Fatalf("n=%d: the fault at %s was not reported: notes %q", n, stepTempRemove, notes)
		}
		steps[stepTempRemove] = true
		mustBalance(t, path)
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
	if !errors.Is(err, errInjected) {
		t.Fatalf("n=%d: the fault at %s came back as %v", n, step, err)
	}
	after := takeSnapshot(t, path)
	if _, _, err := readState(path); err != nil {
		t.Fatalf("n=%d: after a fault at %s the ticket file does not parse: %v", n, step, err)
	}
	state, rerr := Open(path, Options{}).Read()
	if rerr != nil {
		t.Fatalf("n=%d: after a fault at %s: read: %v", n, step, rerr)
	}
	rep := mustBalance(t, path)
	undoFailed := slices.Contains(in.hit, stepJournalUndo)
	if rep.Pending != "" && !bytes.Equal(after.journal, before.journal) && !undoFailed {
		t.Errorf("n=%d: the buy that failed at %s left a tail: %s", n, step, rep.Pending)
	}
	if beforeState.Version == 0 {
		t.Fatal("the sale must start with a sale made")
	}
	committed := state.Version != beforeState.Version
	switch {
	case committed:
		// The ticket file is replaced last: once it shows the sale, no
		// step of the buy is left to fail.
		t.Fatalf("n=%d: the fault at %s committed the sale but returned %v", n, step, err)
	case errors.Is(err, ErrUnconfirmed):
		// Taking the sale's line back failed too: it stays beyond the
		// ticket file, not counted in this boot (the next buy cuts it),
		// and it would be rolled forward after a restart: its outcome is
		// not confirmed either way, and the receipt says what it was.
		want, _ := beforeState.Take(3)
		if !undoFailed || r.Sale.Seq != want.Version || !strings.Contains(rep.Pending, "never committed") {
			t.Fatalf("n=%d: ErrUnconfirmed for a fault at %s: receipt sale #%d (want #%d), undo failed %v, pending %q", n, step, r.Sale.Seq, want.Version, undoFailed, rep.Pending)
		}
	default:
		if r.Sale.Seq != 0 {
			t.Fatalf("n=%d: failed buy returned a sale #%d", n, r.Sale.Seq)
		}
		// The ticket file may have been completed from the journal, and
		// nothing else: it is unchanged or it is exactly what Read saw.
		if file, _, _ := readState(path); !bytes.Equal(after.ticket, before.ticket) && (file.Version != beforeState.Version || file.Left != beforeState.Left) {
			t.Fatalf("n=%d: fault at %s changed the ticket file:\n%s\nto\n%s", n, step, before.ticket, after.ticket)
		}
		// The journal may have lost what a crashed buyer never committed,
		// nothing else.
		if !bytes.HasPrefix(before.journal, after.journal) || rep.Sales != beforeState.Version {
			t.Fatalf("n=%d: fault at %s changed the committed journal:\n%s\nto\n%s", n, step, before.journal, after.journal)
		}
	}
	// Buying continues, and leaves no temporary file.
	if _, err := Open(path, Options{}).Buy(context.Background(), "next", 1); err != nil {
		t.Fatalf("n=%d: the buy after a fault at %s failed: %v", n, step, err)
	}
	mustBalance(t, path)
	if takeSnapshot(t, path).tmp {
		t.Fatalf("n=%d: %s.tmp left after the next buy", n, path)
	}
	return false
}

func appendFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFaultEveryStepReached checks that a buy after a crash (a sale
// committed to the journal only, then an unfinished line, and a stale
// PATH.tmp) goes through every step of the seam, in order, so that the
// injection loop reaches them all; a step added later without a fault
// call, or a renamed one, shows here. (journal.undo runs only after a
// failure: the from-then-on loop reaches it. temp.sync and dir.sync belong
// to Init and Restore, which write the ticket file durably.)
func TestFaultEveryStepReached(t *testing.T) {
	path := newSale(t, 10, 1)
	st, err := Open(path, Options{}).Read()
	if err != nil {
		t.Fatal(err)
	}
	appendFile(t, path+".journal", uncommittedLine(t, st, 1))
	appendFile(t, path+".journal", []byte(`{"seq": 3, "buy`))
	if err := os.WriteFile(path+".tmp", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var seen []string
	setFault(t, func(step string) error { seen = append(seen, step); return nil })
	if _, err := Open(path, Options{}).Buy(context.Background(), "b", 1); err != nil {
		t.Fatal(err)
	}
	want := []string{stepJournalOpen, stepRead, stepJournalCut, stepTempRemove, stepJournalWrite, stepJournalSync, stepTempCreate, stepTempWrite, stepRename}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Fatalf("steps %q, want %q", seen, want)
	}
	seen = nil
	if _, _, err := Open(path, Options{}).Init(context.Background(), 5, true); err != nil {
		t.Fatal(err)
	}
	// The old journal is opened (and locked) to be archived, then the new one.
	want = []string{stepRead, stepRead, stepJournalOpen, stepJournalOpen, stepDirSync, stepJournalWrite, stepJournalSync, stepTempCreate, stepTempWrite, stepTempSync, stepRename, stepDirSync}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Fatalf("init: steps %q, want %q", seen, want)
	}
}

// markOtherBoot marks the journal at path as written in another boot of
// the machine, as if it were written before a restart (see sameBoot).
func markOtherBoot(t *testing.T, path string) {
	t.Helper()
	if err := unix.Setxattr(path, bootAttr, []byte("an-earlier-boot"), 0); err != nil {
		t.Skipf("cannot mark %s with an extended attribute: %v", path, err)
	}
}

// TestUndoFailureIsUnconfirmed: when the ticket file cannot be replaced
// after the sale's journal line was fsynced, and taking the line back
// fails too, the buy returns ErrUnconfirmed (exit 6 in the command) with
// the receipt: the line is beyond the ticket file, so in this boot it was
// never committed (Read does not count it, Verify says so, and the next
// buy cuts it), while after a restart it would be rolled forward as a sale
// (the next buy completes it). When taking it back works, nothing was sold.
func TestUndoFailureIsUnconfirmed(t *testing.T) {
	for _, c := range []struct {
		undoFails, reboot bool
	}{{false, false}, {true, false}, {true, true}} {
		t.Run(fmt.Sprintf("undo-fails=%v/restart=%v", c.undoFails, c.reboot), func(t *testing.T) {
			path := newSale(t, 5, 1)
			setFault(t, func(step string) error {
				if step == stepTempCreate || (c.undoFails && step == stepJournalUndo) {
					return errInjected
				}
				return nil
			})
			r, err := Open(path, Options{}).Buy(context.Background(), "alice", 2)
			fault = func(string) error { return nil }
			if !errors.Is(err, errInjected) || errors.Is(err, ErrUnconfirmed) != c.undoFails {
				t.Fatalf("got %v, want the injected error, ErrUnconfirmed: %v", err, c.undoFails)
			}
			if c.undoFails && (r.Sale.Seq != 2 || r.Sale.Buyer != "alice" || r.State.Left != 2) {
				t.Fatalf("receipt %+v, want sale #2 to alice, 2 left", r)
			}
			if !c.undoFails && r.Sale.Seq != 0 {
				t.Fatalf("receipt %+v, want nothing sold", r)
			}
			if c.reboot {
				simulateReboot(t)
			}
			st, err := Open(path, Options{}).Read()
			if err != nil {
				t.Fatal(err)
			}
			stands := c.undoFails && c.reboot
			wantLeft, wantVersion := int64(4), int64(1)
			if stands {
				wantLeft, wantVersion = 2, 2
			}
			if st.Left != wantLeft || st.Version != wantVersion {
				t.Fatalf("Read: %+v; want %d left at version %d", st, wantLeft, wantVersion)
			}
			if rep := mustBalance(t, path); (rep.Pending != "") != c.undoFails {
				t.Fatalf("verify: pending %q", rep.Pending)
			}
			if _, err := Open(path, Options{}).Buy(context.Background(), "bob", 1); err != nil {
				t.Fatal(err)
			}
			if file, _, err := readState(path); err != nil || file.Version != wantVersion+1 || file.Left != wantLeft-1 {
				t.Fatalf("the ticket file after the next buy: %+v, %v; want version %d, %d left", file, err, wantVersion+1, wantLeft-1)
			}
			if rep := mustBalance(t, path); rep.Pending != "" || rep.Sales != wantVersion+1 {
				t.Fatalf("after the next buy: %d sales, pending %q", rep.Sales, rep.Pending)
			}
		})
	}
}
