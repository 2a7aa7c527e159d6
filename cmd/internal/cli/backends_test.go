package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redistest"
	"github.com/ticketd/ticket/ticket"
)

// backends are the kinds of sale the table tests run against: each spec
// returns a fresh, not yet created sale (a path in a new directory, or a
// sale on a redis-server of the test's own).
var backends = []struct {
	name string
	spec func(t *testing.T) string
}{
	{"file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "ticket.json") }},
	{"redis", func(t *testing.T) string { return redistest.Start(t).URL(nextSale()) }},
}

var saleNumber atomic.Int64

func nextSale() string { return fmt.Sprintf("sale%d", saleNumber.Add(1)) }

// openSpec opens a sale by spec, closed when the test ends.
func openSpec(t *testing.T, spec string) store.Backend {
	t.Helper()
	s, err := newCLI(io.Discard, io.Discard).open(spec, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestVerifyBothBackends writes books that do not balance into each
// backend (through Restore, which takes them as given) and runs ticket
// verify: exit 5 naming the problem; balanced books exit 0.
func TestVerifyBothBackends(t *testing.T) {
	sale := func(seq, qty, left int64) ticket.Record {
		return ticket.Record{Seq: seq, Buyer: "x", Qty: qty, Left: left, PID: 1, Time: time.Unix(0, 0).UTC()}
	}
	state := func(left, total, version int64) ticket.State {
		st, err := ticket.At(version, left, total)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	cases := []struct {
		name  string
		state ticket.State
		sales []ticket.Record
		want  string // "" for balanced books
	}{
		{"balanced", state(7, 10, 2), []ticket.Record{sale(1, 2, 8), sale(2, 1, 7)}, ""},
		{"sale-missing-from-journal", state(7, 10, 2), []ticket.Record{sale(1, 2, 8)}, "version 2"},
		{"gap", state(7, 10, 3), []ticket.Record{sale(1, 2, 8), sale(3, 1, 7)}, "without gaps"},
		{"repeat", state(7, 10, 1), []ticket.Record{sale(1, 2, 8), sale(1, 1, 7)}, "without gaps"},
		{"left-does-not-follow", state(5, 10, 2), []ticket.Record{sale(1, 2, 8), sale(2, 1, 5)}, "the records before it leave"},
		// A count below what the last sale left: on Redis nothing else
		// writes the state, so the books do not balance; in a file it is a
		// sale made outside ticket, under the lock (see the cooperation
		// tests), which the next buy records.
		{"total-does-not-balance", state(7, 10, 1), []ticket.Record{sale(1, 2, 8)}, "is not the"},
	}
	for _, be := range backends {
		for _, c := range cases {
			if be.name == "file" && c.name == "total-does-not-balance" {
				c.want = ""
			}
			t.Run(be.name+"/"+c.name, func(t *testing.T) {
				spec := be.spec(t)
				if _, err := openSpec(t, spec).Restore(context.Background(), c.state, c.sales, store.Create); err != nil {
					t.Fatal(err)
				}
				o := runCaptured(t, "verify", "--store", spec)
				switch {
				case c.want == "" && o.code != exitOK:
					t.Fatalf("balanced books: exit %d: %s", o.code, o.stderr)
				case c.want != "" && (o.code != exitInvalid || !strings.Contains(o.stderr, c.want)):
					t.Fatalf("exit %d, stderr %q; want 5 and %q", o.code, o.stderr, c.want)
				}
			})
		}
	}
}

// TestCopyCommand moves a sale from a file into Redis and back with
// ticket copy: it refuses an existing destination without --force, keeps
// the destination's old journal with it, and both sides balance.
func TestCopyCommand(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	dir := t.TempDir()
	file, rd := filepath.Join(dir, "t.json"), srv.URL("copy")
	must := func(want int, args ...string) outcome {
		t.Helper()
		o := runCaptured(t, args...)
		if o.code != want {
			t.Fatalf("ticket %v: exit %d, want %d: %s%s", args, o.code, want, o.stdout, o.stderr)
		}
		return o
	}
	must(exitOK, "init", "-f", file, "--count", "10")
	must(exitOK, "buy", "-f", file, "--buyer", "early", "--qty", "2")
	must(exitOK, "copy", file, rd)
	must(exitError, "copy", "file:"+file, rd) // rd holds a sale now
	must(exitOK, "buy", "--store", rd, "--buyer", "peak", "--qty", "3")
	if o := must(exitError, "copy", rd, file); !strings.Contains(o.stderr, "--force") {
		t.Errorf("refusal does not say how to override: %s", o.stderr)
	}
	o := must(exitOK, "copy", "--force", "--json", rd, file)
	var res struct {
		Sales           int64  `json:"sales"`
		Left            int64  `json:"left"`
		ArchivedJournal string `json:"archived_journal"`
	}
	if err := json.Unmarshal([]byte(o.stdout), &res); err != nil || res.Sales != 2 || res.Left != 5 || res.ArchivedJournal == "" {
		t.Fatalf("copy --json: %s (%v); want 2 sales, 5 left, the old journal kept", o.stdout, err)
	}
	if _, err := os.Stat(res.ArchivedJournal); err != nil {
		t.Errorf("the file's old journal: %v", err)
	}
	o = must(exitOK, "show", "-f", file, "--sales")
	if !strings.Contains(o.stdout, "early bought 2") || !strings.Contains(o.stdout, "peak bought 3") {
		t.Errorf("the file's journal after the round trip:\n%s", o.stdout)
	}
	must(exitOK, "verify", "-f", file)
	must(exitUsage, "copy", file)
	must(exitUnreachable, "copy", file, "redis://127.0.0.1:1/0?name=x")
}

// TestRedisDurabilityReported: show and verify say what the server
// promises, and warn when it can lose acknowledged sales.
func TestRedisDurabilityReported(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		warn bool
		says string
	}{
		{"none", nil, true, "no persistence"},
		{"everysec", []string{"--appendonly", "yes", "--appendfsync", "everysec"}, true, "appendfsync everysec"},
		{"always", []string{"--appendonly", "yes", "--appendfsync", "always"}, false, "appendfsync always"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := redistest.Start(t, tc.args...).URL("d")
			if o := runCaptured(t, "init", "--store", spec, "--count", "3"); o.code != exitOK || strings.Contains(o.stderr, "warning") != tc.warn {
				t.Fatalf("init: exit %d, stderr %q; want a warning: %v", o.code, o.stderr, tc.warn)
			}
			for _, cmd := range []string{"show", "verify"} {
				o := runCaptured(t, cmd, "--store", spec, "--json")
				if o.code != exitOK || !strings.Contains(o.stdout, `"durability":`) || !strings.Contains(o.stdout, tc.says) {
					t.Errorf("%s --json: exit %d, stdout %s; want the durability, %q", cmd, o.code, o.stdout, tc.says)
				}
				if strings.Contains(o.stderr, "warning") != tc.warn {
					t.Errorf("%s: stderr %q; want a warning: %v", cmd, o.stderr, tc.warn)
				}
			}
		})
	}
}

// TestRedisKill9Buyers kills buyers with SIGKILL at random moments of a
// race: a script runs whole or not at all, so the books balance and every
// buyer told it got a ticket has its sale.
func TestRedisKill9Buyers(t *testing.T) {
	srv := redistest.Start(t)
	spec := srv.URL("kill9")
	s := openSpec(t, spec)
	const tickets, buyers = 30, 40
	if _, _, err := s.Init(context.Background(), tickets, store.Create); err != nil {
		t.Fatal(err)
	}
	cmds := make([]*exec.Cmd, buyers)
	for i := range cmds {
		cmds[i] = capture(ticketCmd("buy", "--store", spec, "--buyer", fmt.Sprintf("k%d", i), "--json"))
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
		p := cmds[i].Process
		t.Cleanup(func() { _ = p.Kill() })
	}
	for i := 0; i < buyers; i += 2 {
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		_ = cmds[i].Process.Kill()
	}
	told, killed := map[string]bool{}, 0
	for i, cmd := range cmds {
		o := finish(t, cmd, cmd.Wait())
		switch {
		case o.signal == syscall.SIGKILL:
			killed++
		case o.code == exitOK:
			told[fmt.Sprintf("k%d", i)] = true
		case o.code != exitSoldOut:
			t.Errorf("k%d: exit %d: %s", i, o.code, o.stderr)
		}
	}
	rep, err := s.Verify(context.Background())
	if err != nil || !rep.Balanced() {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	inJournal := map[string]bool{}
	for sale, err := range s.Sales() {
		if err != nil {
			t.Fatal(err)
		}
		inJournal[sale.Buyer] = true
	}
	for b := range told {
		if !inJournal[b] {
			t.Errorf("%s was told it got a ticket but has no sale", b)
		}
	}
	t.Logf("%d killed, %d told they got a ticket, %d sales in the journal", killed, len(told), len(inJournal))
}
