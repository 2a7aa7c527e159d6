//go:build linux

package powercut

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// Helpers of the power-cut tests of ticket (cut_ticket_test.go), and
// their negative control: without the journal's fsync, the file system
// forgets acknowledged sales.

var (
	buildOnce sync.Once
	buildDir  string // removed by TestMain
	ticketBin string
	buildErr  error
)

// ticket builds ./cmd/ticket once for the test binary and returns its path.
func ticket(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "powercut-ticket-"); buildErr != nil {
			return
		}
		ticketBin = filepath.Join(buildDir, "ticket")
		out, err := exec.Command("go", "build", "-o", ticketBin, "github.com/ticketd/ticket/cmd/ticket").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/ticket: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return ticketBin
}

// round is one run of buyers from the checkpoint, the power cut at the
// nth operation (none if the buyers need fewer).
type round struct {
	cut    bool
	ops    int
	acked  int      // buyers that exited 0
	lost   []string // acknowledged sales not in the journal after the cut
	report Report
}

// newSale mounts a file system holding a durable sale of 100 tickets at
// t.json, checkpointed.
func newSale(t *testing.T, v Variant) *Mount {
	t.Helper()
	m := New(t, Options{Variant: v})
	if out, err := exec.Command(ticket(t), "init", "--count", "100", "-f", m.Path("t.json")).CombinedOutput(); err != nil {
		t.Fatalf("ticket init: %v\n%s", err, out)
	}
	m.Checkpoint()
	return m
}

// buyRound rewinds m to its checkpoint, starts buyers at once (each
// "ticket buy --buyer bI" plus extra), cuts at the nth operation,
// remounts and checks the journal: every buyer that exited 0 must have
// its sale there, once (unless extra has --no-sync: the negative control
// only counts what was lost).
func buyRound(t *testing.T, m *Mount, n, buyers int, extra ...string) round {
	t.Helper()
	return buyRoundOn(t, m, Trigger{Nth: n}, buyers, extra...)
}

// buyRoundOn is buyRound with the cut at the trigger's operation.
func buyRoundOn(t *testing.T, m *Mount, trigger Trigger, buyers int, extra ...string) round {
	t.Helper()
	n := fmt.Sprintf("%+v", trigger)
	m.Rewind()
	m.CutOn(trigger)
	procs := map[string]*Proc{}
	outs := map[string]*bytes.Buffer{}
	for i := range buyers {
		name := fmt.Sprintf("b%d", i)
		cmd := exec.Command(ticket(t), append([]string{"buy", "-f", m.Path("t.json"), "--buyer", name}, extra...)...)
		outs[name] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = outs[name], outs[name]
		p, err := m.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		procs[name] = p
	}
	var r round
	codes := map[string]int{}
	for name, p := range procs {
		codes[name] = p.ExitCode()
		switch codes[name] {
		case 0:
			r.acked++
		case -1: // killed by the cut
		default:
			t.Errorf("cut at %s: buyer %s exited %d: %s", n, name, codes[name], outs[name])
		}
	}
	r.cut, r.ops = m.IsCut(), m.Ops()
	r.report = m.Remount()
	sales := journalBuyers(t, m.Path("t.json.journal"))
	for name, code := range codes {
		if code == 0 && sales[name] != 1 {
			r.lost = append(r.lost, name)
		}
		if sales[name] > 1 {
			t.Errorf("cut at %s: buyer %s has %d sales in the journal", n, name, sales[name])
		}
	}
	if len(r.lost) > 0 && !slices.Contains(extra, "--no-sync") {
		t.Errorf("cut at %s: acknowledged sales of %q are not in the journal after the cut\n%s\n%s", n, r.lost, r.report, r.report.LogTail(40))
	}
	return r
}

// journalBuyers counts the journal's sales per buyer; a line that is not
// a sale (a torn last line) is skipped.
func journalBuyers(t *testing.T, path string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the journal: %v", err)
	}
	out := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var sale struct{ Buyer string }
		if json.Unmarshal(sc.Bytes(), &sale) == nil && sale.Buyer != "" {
			out[sale.Buyer]++
		}
	}
	return out
}

// cutEveryOperation runs rounds with the cut at operation 1, 2, ... until
// the buyers complete without one, and returns the rounds.
func cutEveryOperation(t *testing.T, v Variant, buyers int, extra ...string) []round {
	m := newSale(t, v)
	var rounds []round
	for n := 1; ; n++ {
		r := buyRound(t, m, n, buyers, extra...)
		rounds = append(rounds, r)
		if !r.cut || t.Failed() {
			break
		}
	}
	return rounds
}

// summary describes rounds for the log.
func summary(rounds []round) string {
	cuts, acked, lost := 0, 0, 0
	for _, r := range rounds {
		if r.cut {
			cuts++
		}
		acked += r.acked
		lost += len(r.lost)
	}
	last := rounds[len(rounds)-1]
	return fmt.Sprintf("%d cuts, at operations 1 to %d in turn (the round that completed took %d operations), %d acknowledged sales checked, %d lost",
		cuts, cuts, last.ops, acked, lost)
}

// long reports whether the long loops run (TICKET_TEST_LONG=1).
func long() bool { return os.Getenv("TICKET_TEST_LONG") == "1" }

// buyers is how many buyers a round starts.
func buyers() int {
	if long() {
		return 6
	}
	return 3
}

// TestPowerCutNoSyncControl is the negative control of the power-cut
// tests: the same buyers with --no-sync, which skips the journal's
// fdatasync, lose acknowledged sales under LoseAll; the file system
// forgets, and the checks see it.
func TestPowerCutNoSyncControl(t *testing.T) {
	t.Parallel()
	rounds := cutEveryOperation(t, LoseAll, buyers(), "--no-sync")
	t.Logf("ticket buy --no-sync, %d buyers, %v: %s", buyers(), LoseAll, summary(rounds))
	lostRounds := 0
	for _, r := range rounds {
		if len(r.lost) > 0 {
			lostRounds++
		}
	}
	last := rounds[len(rounds)-1]
	if last.acked != buyers() || len(last.lost) != buyers() {
		t.Errorf("with no cut before the end, %d buyers acknowledged and %d sales were lost at the final cut: want %d and %d\n%s",
			last.acked, len(last.lost), buyers(), buyers(), last.report)
	}
	if lostRounds == 0 {
		t.Errorf("no round lost an acknowledged sale: the file system did not forget")
	}
	t.Logf("%d of %d rounds lost acknowledged sales; the final one (no cut before the buyers ended, then one): %d of %d lost\n%s",
		lostRounds, len(rounds), len(last.lost), buyers(), last.report)
}
