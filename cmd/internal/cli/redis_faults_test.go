package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redistest"
)

// redisBuy is the outcome of one buyer process in a Redis fault test.
type redisBuy struct {
	buyer  string
	code   int
	bought bool
	stderr string
}

// buyWaves runs total buyer processes, workers at a time, one ticket
// each, against spec. Once after buys have finished, it calls fault on
// the test's goroutine while the other buyers keep going.
func buyWaves(t *testing.T, spec string, total, workers, after int, fault func()) []redisBuy {
	t.Helper()
	var (
		mu      sync.Mutex
		out     []redisBuy
		next    atomic.Int64
		done    atomic.Int64
		reached = make(chan struct{})
		once    sync.Once
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(total) {
					return
				}
				name := fmt.Sprintf("w%d-%d", w, i)
				o := runCaptured(t, "buy", "--store", spec, "--buyer", name, "--json")
				var r struct{ Bought bool }
				_ = json.Unmarshal([]byte(o.stdout), &r)
				mu.Lock()
				out = append(out, redisBuy{name, o.code, r.Bought, o.stderr})
				mu.Unlock()
				if done.Add(1) >= int64(after) {
					once.Do(func() { close(reached) })
				}
			}
		})
	}
	<-reached
	fault()
	wg.Wait()
	return out
}

// acknowledged returns the buyers told they got a ticket (exit 0).
func acknowledged(buys []redisBuy) map[string]bool {
	acked := map[string]bool{}
	for _, b := range buys {
		if b.code == exitOK && b.bought {
			acked[b.buyer] = true
		}
	}
	return acked
}

// TestRedisRestartMidRush restarts the server (SIGKILL, then start it on
// the same directory) while buyers run. With appendonly yes and
// appendfsync always, no buyer told it got a ticket loses its sale; the
// negative control, a server without persistence, loses them, which shows
// the check can fail. A SIGKILL kills the server process, not the
// machine: what the kernel had been given survives it, so this proves
// that acknowledged sales are in the append-only file, and would pass
// with appendfsync no as well. That fsync reaches the disk before the
// reply (what "always" adds, for a power cut) is Redis's promise, not
// tested here.
func TestRedisRestartMidRush(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantLost bool
	}{
		{"appendfsync always", []string{"--appendonly", "yes", "--appendfsync", "always"}, false},
		{"no persistence (control)", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, tc.args...)
			spec := srv.URL("restart")
			s := openSpec(t, spec)
			if _, _, err := s.Init(context.Background(), 1000, store.Create); err != nil {
				t.Fatal(err)
			}
			buys := buyWaves(t, spec, size(40, 80), 4, size(10, 20), srv.Restart)
			codes := map[int]int{}
			for _, b := range buys {
				codes[b.code]++
				if b.code == exitSoldOut {
					t.Errorf("%s: sold out with 1000 tickets: %s", b.buyer, b.stderr)
				}
			}
			t.Logf("exit codes: %v", codes)
			acked := acknowledged(buys)
			inJournal := map[string]bool{}
			for sale, err := range s.Sales() {
				if tc.wantLost && errors.Is(err, store.ErrNotFound) {
					break // the server restarted empty: the whole sale is gone
				}
				if err != nil {
					t.Fatal(err)
				}
				inJournal[sale.Buyer] = true
			}
			lost := 0
			for b := range acked {
				if !inJournal[b] {
					lost++
				}
			}
			t.Logf("%d buyers told they got a ticket, %d of them lost by the restart", len(acked), lost)
			if tc.wantLost {
				if lost == 0 {
					t.Fatal("the control lost no acknowledged sale: the test cannot tell a durable server from none")
				}
				return
			}
			if lost > 0 {
				t.Fatalf("%d acknowledged sales lost across the restart", lost)
			}
			for _, b := range buys {
				if b.code != exitOK && b.code != exitUnreachable {
					t.Errorf("%s: exit %d, want 0 or 7: %s", b.buyer, b.code, b.stderr)
				}
			}
			rep, err := s.Verify(context.Background())
			if err != nil || !rep.Balanced() {
				t.Fatalf("verify after the restart: %+v, %v", rep, err)
			}
		})
	}
}

// TestRedisKilledMidRush kills the server while buyers run: every buyer
// after that fails with exit 7 (backend unreachable), never 3 (sold out).
func TestRedisKilledMidRush(t *testing.T) {
	srv := redistest.Start(t)
	spec := srv.URL("killed")
	s := openSpec(t, spec)
	if _, _, err := s.Init(context.Background(), 1000, store.Create); err != nil {
		t.Fatal(err)
	}
	buys := buyWaves(t, spec, size(40, 60), 4, size(10, 15), srv.Kill)
	codes := map[int]int{}
	for _, b := range buys {
		codes[b.code]++
		switch b.code {
		case exitOK:
		case exitUnreachable:
			// One line that says whether anything may have been bought,
			// and if it may, the whole command that tells.
			clear := strings.Contains(b.stderr, "nothing was bought") ||
				strings.Contains(b.stderr, "outcome unknown") && strings.Contains(b.stderr, "--buyer "+b.buyer+" --qty 1 --request-id ")
			if !clear || strings.Count(strings.TrimSpace(b.stderr), "\n") != 0 {
				t.Errorf("%s: exit 7 without one clear line: %q", b.buyer, b.stderr)
			}
		default:
			t.Errorf("%s: exit %d, want 0 or 7: %s", b.buyer, b.code, b.stderr)
		}
	}
	t.Logf("exit codes: %v", codes)
	if codes[exitUnreachable] == 0 {
		t.Fatal("no buyer saw the server gone")
	}
}

// TestRedisBuyRetried runs the same buy twice with one --request-id, as a
// buyer that lost the reply would: the second gets the original sale and
// buys nothing more. (store's TestRedisLostReply loses a real reply.)
func TestRedisBuyRetried(t *testing.T) {
	srv := redistest.Start(t)
	spec := srv.URL("retry")
	s := openSpec(t, spec)
	if _, _, err := s.Init(context.Background(), 5, store.Create); err != nil {
		t.Fatal(err)
	}
	var seqs []string
	for range 2 {
		o := runCaptured(t, "buy", "--store", spec, "--buyer", "ann", "--qty", "2", "--request-id", "order-42", "--json")
		if o.code != exitOK || !strings.Contains(o.stdout, `"bought":true`) {
			t.Fatalf("exit %d: %s %s", o.code, o.stdout, o.stderr)
		}
		seqs = append(seqs, o.stdout)
	}
	if !strings.Contains(seqs[1], `"replayed":true`) || !strings.Contains(seqs[1], `"seq":1`) {
		t.Fatalf("retry: %s; want sale #1, replayed", seqs[1])
	}
	if st, err := s.Read(); err != nil || st.Left() != 3 {
		t.Fatalf("after a buy of 2 from 5 retried once: %+v, %v; want 3 left", st, err)
	}
	// A file sale has no request ids: the flag is a usage error there.
	if o := runCaptured(t, "buy", "-f", t.TempDir()+"/t.json", "--request-id", "x"); o.code != exitUsage {
		t.Errorf("--request-id on a file: exit %d, want 2", o.code)
	}
	if o := runCaptured(t, "buy", "--store", "redis://127.0.0.1:1/0?name=x"); o.code != exitUnreachable {
		t.Errorf("nothing listening: exit %d, want 7: %s", o.code, o.stderr)
	}
}

// TestRedisWatch: ticket watch reads a Redis sale as it reads a file and
// stops at sold out.
func TestRedisWatch(t *testing.T) {
	spec := redistest.Start(t).URL("watch")
	if o := runCaptured(t, "init", "--store", spec, "--count", "1"); o.code != exitOK {
		t.Fatalf("init: %d %s", o.code, o.stderr)
	}
	if o := runCaptured(t, "buy", "--store", spec); o.code != exitOK {
		t.Fatalf("buy: %d %s", o.code, o.stderr)
	}
	o := runCaptured(t, "watch", "--store", spec, "--every", "10ms")
	if o.code != exitOK || strings.TrimSpace(o.stdout) != "heartbeat: 0 left of 1" {
		t.Fatalf("watch: exit %d, stdout %q, stderr %q", o.code, o.stdout, o.stderr)
	}
	if o := runCaptured(t, "buy", "--store", spec); o.code != exitSoldOut {
		t.Fatalf("buy from a sold-out Redis sale: exit %d, want 3: %s", o.code, o.stderr)
	}
}

// TestRedisRushServerKilled kills the server while ticket rush starts its
// buyers: no buyer reports sold out, and the rush exits 7 (it could not
// check the books), not 5 (they do not balance).
func TestRedisRushServerKilled(t *testing.T) {
	srv := redistest.Start(t)
	spec := srv.URL("rushkill")
	dir := t.TempDir()
	p := start(t, dir, "rush", "--json", "--store", spec, "--count", "500", "--buyers", "60")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.errs(), "60 buyers, 500 tickets left") {
		if time.Now().After(deadline) {
			t.Fatalf("the rush did not start in 30s: %s", p.errs())
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv.Kill()
	code := p.wait(t)
	var sum rushSummary
	if err := json.Unmarshal([]byte(p.out()), &sum); err != nil {
		t.Fatalf("stdout %q: %v\nstderr:\n%s", p.out(), err, p.errs())
	}
	if code != exitUnreachable || sum.SoldOut != 0 {
		t.Fatalf("exit %d, %d sold out; want 7 and none\nstderr:\n%s", code, sum.SoldOut, p.errs())
	}
	t.Logf("got %d, errors %d; last stderr line: %s", sum.Got, sum.Errors, lastLine(p.errs()))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
