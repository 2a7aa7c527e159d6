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
	"regexp"
	"strconv"
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

// TestBookingBothBackends runs every booking command, and the bad input
// each refuses, against a ticket file and a Redis sale: the same output,
// the same exit statuses, and books that balance after.
func TestBookingBothBackends(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			spec := be.spec(t)
			must := func(want int, args ...string) outcome {
				t.Helper()
				o := runCaptured(t, append(args, "--store", spec)...)
				if o.code != want {
					t.Fatalf("ticket %v: exit %d, want %d: %s%s", args, o.code, want, o.stdout, o.stderr)
				}
				return o
			}
			stdout := func(o outcome, re string) {
				t.Helper()
				if !regexp.MustCompile(re).MatchString(o.stdout) {
					t.Fatalf("stdout %q, want %q", o.stdout, re)
				}
			}
			stdout(must(exitOK, "init", "--count", "10", "--limit", "3"), `: 10 tickets, at most 3 a buyer\n$`)
			must(exitUsage, "buy")
			must(exitUsage, "hold", "--for", "1h")
			must(exitUsage, "hold", "--buyer", "a", "--for", "0")
			o := must(exitOK, "hold", "--buyer", "alice", "--qty", "2", "--for", "1h", "--json")
			var h struct {
				Hold string `json:"hold"`
				Seq  int64  `json:"seq"`
				Left int64  `json:"left"`
				Held int64  `json:"held"`
			}
			if err := json.Unmarshal([]byte(o.stdout), &h); err != nil || h.Left != 8 || h.Held != 2 || !regexp.MustCompile(`^\d+-[0-9a-f]{8}$`).MatchString(h.Hold) {
				t.Fatalf("hold --json: %s (%v)", o.stdout, err)
			}
			stdout(must(exitOK, "show"), `^8 left of 10 \(2 held, 0 sold\)\n$`)
			stdout(must(exitOK, "show", "--json"), `"held":2,"limit":3`)
			must(exitLimit, "hold", "--buyer", "alice", "--qty", "2", "--for", "1h")
			must(exitLimit, "buy", "--buyer", "alice", "--qty", "2")
			must(exitError, "confirm", "99-0a1b2c3d")
			must(exitError, "confirm", "nonsense")
			must(exitLimit, "restock", "--limit", "1")
			must(exitSoldOut, "restock", "--remove", "9")
			must(exitUsage, "restock", "--add", "1", "--remove", "1")
			stdout(must(exitOK, "confirm", h.Hold), `^alice got 2 tickets: hold `+h.Hold+` is sale #\d+\n$`)
			first := must(exitOK, "confirm", h.Hold).stdout
			stdout(must(exitOK, "confirm", h.Hold), "^"+regexp.QuoteMeta(first)+"$")
			must(exitError, "release", h.Hold)
			sale := regexp.MustCompile(`#(\d+)`).FindStringSubmatch(first)[1]
			must(exitError, "return", sale, "--qty", "3")
			stdout(must(exitOK, "return", sale, "--qty", "1"), `^alice returned 1 ticket of sale #`+sale+` \(9 left\)\n$`)
			must(exitError, "return", "1") // a hold's number is no sale
			o = must(exitOK, "hold", "--buyer", "bob", "--for", "1h")
			bob := strings.TrimSpace(o.stdout)
			stdout(must(exitOK, "release", bob), `^released hold `+bob+`: 1 ticket back \(9 left\)\n$`)
			must(exitLapsed, "confirm", bob)
			must(exitLapsed, "release", bob)
			stdout(must(exitOK, "restock", "--add", "5"), `add|added`)
			stdout(must(exitOK, "restock", "--remove", "2"), `removed`)
			stdout(must(exitOK, "restock", "--limit", "4"), `at most 4 a buyer`)
			must(exitOK, "buy", "--buyer", "carol", "--qty", "4")
			stdout(must(exitOK, "show"), `^8 left of 13 \(5 sold\)\n$`)
			sales := must(exitOK, "show", "--sales").stdout
			for _, want := range []string{"alice held 2", "alice confirmed 2", "alice returned 1", "bob's hold " + bob + " of 1 released", "5 added", "2 removed", "at most 4 a buyer", "carol bought 4"} {
				if !strings.Contains(sales, want) {
					t.Errorf("show --sales lacks %q:\n%s", want, sales)
				}
			}
			// The id of another sale's hold names no hold of this one.
			other := spec + "2"
			if o := runCaptured(t, "init", "--store", other, "--count", "3"); o.code != exitOK {
				t.Fatalf("init the other sale: %+v", o)
			}
			o = runCaptured(t, "hold", "--store", other, "--buyer", "x", "--for", "1h")
			if o.code != exitOK {
				t.Fatalf("hold in the other sale: %+v", o)
			}
			if o := must(exitError, "confirm", strings.TrimSpace(o.stdout)); !strings.Contains(o.stderr, "no such hold") {
				t.Fatalf("confirm of another sale's hold: %s", o.stderr)
			}
			must(exitOK, "restock", "--remove", "6")
			must(exitSoldOut, "hold", "--buyer", "dan", "--qty", "3", "--for", "1h")
			must(exitSoldOut, "buy", "--buyer", "dan", "--qty", "3")
			stdout(must(exitOK, "verify"), `balance`)
		})
	}
}

// TestCopyBooking copies a sale with a limit, open holds, confirms,
// releases and returns from a file into Redis and back with ticket copy:
// each side balances, keeps the open holds and each buyer's holding (the
// limit still refuses the buyer at it), and a hold opened before a copy is
// confirmed after it.
func TestCopyBooking(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	file, back, rd := filepath.Join(dir, "t.json"), filepath.Join(dir, "back.json"), srv.URL("copybook")
	must := func(want int, args ...string) string {
		t.Helper()
		o := runCaptured(t, args...)
		if o.code != want {
			t.Fatalf("ticket %v: exit %d, want %d: %s%s", args, o.code, want, o.stdout, o.stderr)
		}
		return strings.TrimSpace(o.stdout)
	}
	must(exitOK, "init", "-f", file, "--count", "20", "--limit", "3")
	h1 := must(exitOK, "hold", "-f", file, "--buyer", "ann", "--qty", "2", "--for", "1h")
	h2 := must(exitOK, "hold", "-f", file, "--buyer", "bob", "--for", "1h")
	must(exitOK, "confirm", "-f", file, h2)
	h3 := must(exitOK, "hold", "-f", file, "--buyer", "bob", "--for", "1h")
	must(exitOK, "release", "-f", file, h3)
	must(exitOK, "buy", "-f", file, "--buyer", "cat", "--qty", "3")
	must(exitOK, "return", "-f", file, "6", "--qty", "1")
	must(exitOK, "restock", "-f", file, "--add", "2")
	h4 := must(exitOK, "hold", "-f", file, "--buyer", "dan", "--for", "1h")
	want := must(exitOK, "show", "-f", file)

	must(exitOK, "copy", file, rd)
	if got := must(exitOK, "show", "--store", rd); got != want {
		t.Fatalf("redis after the copy: %q, the file %q", got, want)
	}
	must(exitOK, "verify", "--store", rd)
	must(exitLimit, "hold", "--store", rd, "--buyer", "ann", "--qty", "2", "--for", "1h") // ann holds 2 of 3
	must(exitLimit, "buy", "--store", rd, "--buyer", "cat", "--qty", "2")                 // cat has 2 of 3 after the return
	must(exitOK, "buy", "--store", rd, "--buyer", "cat")
	must(exitLimit, "buy", "--store", rd, "--buyer", "cat")
	if out := must(exitOK, "confirm", "--store", rd, h1); !strings.Contains(out, "ann got 2 tickets: hold "+h1) {
		t.Fatalf("confirm in redis of a hold made in the file: %s", out)
	}
	if out := must(exitOK, "confirm", "--store", rd, h2); !strings.Contains(out, "bob got 1 ticket: hold "+h2) {
		t.Fatalf("confirm again, in redis, of a hold confirmed in the file: %s", out)
	}
	must(exitLapsed, "confirm", "--store", rd, h3)
	must(exitError, "return", "--store", rd, "6", "--qty", "3") // sale #6 has 2 left after the return in the file
	must(exitOK, "return", "--store", rd, "6", "--qty", "1")
	h5 := must(exitOK, "hold", "--store", rd, "--buyer", "eve", "--qty", "2", "--for", "1h")
	want = must(exitOK, "show", "--store", rd)

	must(exitOK, "copy", rd, back)
	if got := must(exitOK, "show", "-f", back); got != want {
		t.Fatalf("the file after the copy back: %q, redis %q", got, want)
	}
	must(exitOK, "verify", "-f", back)
	must(exitLimit, "hold", "-f", back, "--buyer", "eve", "--qty", "2", "--for", "1h")
	must(exitOK, "confirm", "-f", back, h5)
	must(exitOK, "confirm", "-f", back, h4)
	must(exitError, "release", "-f", back, h5+"0")           // not a hold id
	must(exitError, "return", "-f", back, "6", "--qty", "2") // one left: a return in the file, one in redis
	must(exitOK, "verify", "-f", back)
}

// TestBookingLimitRaceBothBackends: many ticket hold processes with one
// buyer name against a limit of K, on a file and on Redis: exactly K hold,
// the rest exit 8, and the books balance. (The negative controls, with the
// limit check switched off, are the stores' own: see store.TestLimitRace
// and redis.TestRedisLimitRace.)
func TestBookingLimitRaceBothBackends(t *testing.T) {
	const n, k = 10, 3
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			spec := be.spec(t)
			if o := runCaptured(t, "init", "--store", spec, "--count", "20", "--limit", strconv.Itoa(k)); o.code != exitOK {
				t.Fatalf("init: %+v", o)
			}
			cmds := make([]*exec.Cmd, n)
			for i := range cmds {
				cmds[i] = capture(ticketCmd("hold", "--store", spec, "--buyer", "alice", "--for", "1h"))
				if err := cmds[i].Start(); err != nil {
					t.Fatal(err)
				}
				p := cmds[i].Process
				t.Cleanup(func() { _ = p.Kill() })
			}
			count := map[int]int{}
			for _, cmd := range cmds {
				count[finish(t, cmd, cmd.Wait()).code]++
			}
			if count[exitOK] != k || count[exitLimit] != n-k {
				t.Fatalf("exits %v: want %d of 0 and %d of 8", count, k, n-k)
			}
			if o := runCaptured(t, "verify", "--store", spec); o.code != exitOK {
				t.Fatalf("verify: %+v", o)
			}
		})
	}
}

// TestRedisBookingKill9CLI: ticket hold, killed with SIGKILL at a random
// moment, then run again with the same --request-id: one hold, the same id
// printed by every retry.
func TestRedisBookingKill9CLI(t *testing.T) {
	srv := redistest.Start(t)
	spec := srv.URL("kill9book")
	if o := runCaptured(t, "init", "--store", spec, "--count", "100"); o.code != exitOK {
		t.Fatalf("init: %+v", o)
	}
	for i := range 6 {
		id := fmt.Sprintf("hold-%d", i)
		args := []string{"hold", "--store", spec, "--buyer", "k", "--for", "1h", "--request-id", id}
		cmd := capture(ticketCmd(args...))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := cmd.Process
		t.Cleanup(func() { _ = p.Kill() })
		time.Sleep(time.Duration(rand.IntN(40000)) * time.Microsecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		first := runCaptured(t, args...)
		again := runCaptured(t, args...)
		if first.code != exitOK || again.code != exitOK || first.stdout != again.stdout {
			t.Fatalf("retries of %s: %+v, %+v", id, first, again)
		}
	}
	o := runCaptured(t, "show", "--store", spec)
	if o.code != exitOK || o.stdout != "94 left of 100 (6 held, 0 sold)\n" {
		t.Fatalf("after the kills and retries: %+v", o)
	}
	if o := runCaptured(t, "verify", "--store", spec); o.code != exitOK {
		t.Fatalf("verify: %+v", o)
	}
}
