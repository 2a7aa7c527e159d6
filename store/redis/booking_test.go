package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redistest"
	"github.com/ticketd/ticket/ticket"
)

// newLimitSale starts a server with a sale of n tickets, at most k a buyer.
func newLimitSale(t *testing.T, n, k int64) (*redistest.Server, *Store) {
	t.Helper()
	srv := redistest.Start(t)
	r := openRedis(t, srv.URL("book"))
	if _, _, err := r.InitLimit(context.Background(), n, k, store.Create); err != nil {
		t.Fatal(err)
	}
	return srv, r
}

// mustBalance verifies the sale: its books balance.
func mustBalance(t *testing.T, r *Store) store.Report {
	t.Helper()
	rep, err := r.Verify(context.Background())
	if err != nil || !rep.Balanced() {
		t.Fatalf("verify: %v, %q", err, rep.Problems)
	}
	return rep
}

// TestRedisBookingFlow: every booking request once, with the state and the
// journal each leaves, as on a ticket file.
func TestRedisBookingFlow(t *testing.T) {
	ctx := context.Background()
	_, r := newLimitSale(t, 10, 4)
	h, err := r.Hold(ctx, "ann", 2, time.Hour)
	if err != nil || h.Hold.Seq != 1 || h.State.Left() != 8 || h.State.Held() != 2 || !strings.HasPrefix(h.Hold.Hold, "1-") {
		t.Fatalf("hold: %+v, %v", h, err)
	}
	st, err := r.Read()
	holds, herr := r.OpenHolds()
	if err != nil || herr != nil || st.Held() != 2 || st.Left() != 8 || st.Limit() != 4 || len(holds) != 1 || holds[0] != (ticket.Hold{ID: h.Hold.Hold, Buyer: "ann", Qty: 2, Expires: h.Hold.Expires}) {
		t.Fatalf("read after hold: %v held %d holds %+v limit %d, %v %v", st, st.Held(), holds, st.Limit(), err, herr)
	}
	rc, err := r.Confirm(ctx, h.Hold.Hold)
	if err != nil || rc.Sale.Seq != 2 || rc.Sale.Kind != ticket.KindConfirm || rc.Sale.Buyer != "ann" || rc.Sale.Qty != 2 || rc.State.Sold() != 2 || rc.State.Held() != 0 {
		t.Fatalf("confirm: %+v, %v", rc, err)
	}
	again, err := r.Confirm(ctx, h.Hold.Hold)
	if err != nil || again.Sale.Seq != 2 || !again.Replayed || again.State.Sold() != 2 {
		t.Fatalf("second confirm: %+v, %v; want the first outcome", again, err)
	}
	if _, err := r.Release(ctx, h.Hold.Hold); !errors.Is(err, store.ErrConfirmed) {
		t.Fatalf("release of a confirmed hold: %v", err)
	}
	if _, err := r.Buy(ctx, "ann", 3); !errors.Is(err, ticket.ErrLimit) {
		t.Fatalf("buy past the limit: %v", err)
	}
	b, err := r.Buy(ctx, "ann", 2)
	if err != nil || b.Sale.Seq != 3 {
		t.Fatalf("buy to the limit: %+v, %v", b, err)
	}
	if _, err := r.Hold(ctx, "ann", 1, time.Hour); !errors.Is(err, ticket.ErrLimit) {
		t.Fatalf("hold past the limit: %v", err)
	}
	ret, err := r.Return(ctx, 2, 1)
	if err != nil || ret.Kind != ticket.KindReturn || ret.Sale != 2 || ret.Qty != 1 || ret.Buyer != "ann" || ret.Left != 7 {
		t.Fatalf("return 1 of sale 2: %+v, %v", ret, err)
	}
	if _, err := r.Return(ctx, 2, 2); !errors.Is(err, ticket.ErrReturn) {
		t.Fatalf("return 2 of the 1 left of sale 2: %v", err)
	}
	if ret, err = r.Return(ctx, 3, 0); err != nil || ret.Qty != 2 {
		t.Fatalf("return all of sale 3: %+v, %v", ret, err)
	}
	if _, err := r.Return(ctx, 1, 0); !errors.Is(err, ticket.ErrUnknownSale) {
		t.Fatalf("return of a hold's number: %v", err)
	}
	if _, err := r.Return(ctx, 99, 0); !errors.Is(err, ticket.ErrUnknownSale) {
		t.Fatalf("return of a sale to come: %v", err)
	}
	h2, err := r.Hold(ctx, "bob", 3, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := r.Release(ctx, h2.Hold.Hold)
	if err != nil || rel.Kind != ticket.KindRelease || rel.Reason != ticket.ReasonReleased || rel.Qty != 3 {
		t.Fatalf("release: %+v, %v", rel, err)
	}
	if _, err := r.Confirm(ctx, h2.Hold.Hold); !errors.Is(err, ticket.ErrHoldLapsed) {
		t.Fatalf("confirm after release: %v", err)
	}
	if _, _, err := r.SetLimit(ctx, 0); !errors.Is(err, ticket.ErrQuantity) {
		t.Fatalf("limit 0: %v", err)
	}
	if _, err := r.Hold(ctx, "cat", 3, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.SetLimit(ctx, 2); !errors.Is(err, ticket.ErrLimit) || !strings.Contains(err.Error(), `"cat"`) {
		t.Fatalf("a limit below cat's 3: %v", err)
	}
	lr, st, err := r.SetLimit(ctx, 5)
	if err != nil || lr.Kind != ticket.KindLimit || st.Limit() != 5 {
		t.Fatalf("limit 5: %+v %v, %v", lr, st, err)
	}
	add, st, err := r.Restock(ctx, 5)
	if err != nil || add.Kind != ticket.KindAdd || st.Total() != 15 {
		t.Fatalf("add 5: %+v %v, %v", add, st, err)
	}
	if _, _, err := r.Restock(ctx, -100); !errors.Is(err, ticket.ErrSoldOut) {
		t.Fatalf("remove 100: %v", err)
	}
	rm, st, err := r.Restock(ctx, -2)
	if err != nil || rm.Kind != ticket.KindRemove || st.Total() != 13 {
		t.Fatalf("remove 2: %+v %v, %v", rm, st, err)
	}
	for _, bad := range []string{"nohold", "99-00000000", "1-ffffffff"} {
		if _, err := r.Confirm(ctx, bad); !errors.Is(err, ticket.ErrUnknownHold) {
			t.Errorf("confirm %s: %v, want ErrUnknownHold", bad, err)
		}
	}
	if _, err := r.Hold(ctx, "ann", 1, 0); !errors.Is(err, store.ErrDuration) {
		t.Fatalf("hold for 0: %v", err)
	}
	rep := mustBalance(t, r)
	if rep.Booked.Confirms != 1 || rep.Booked.Returned != 3 || rep.Booked.Released != 3 || rep.Sales != 1 {
		t.Fatalf("verify counts: %+v %+v", rep.Counts, rep.Booked)
	}
	var kinds []string
	for rec, err := range r.Sales() {
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, rec.Kind.String())
	}
	if got := strings.Join(kinds, " "); got != "init hold confirm sale return return hold release hold limit add remove" {
		t.Fatalf("journal: %s", got)
	}
}

// TestRedisHoldLapses: a hold past its expiry (the server's clock) counts
// as released for readers, which write nothing, and the next script that
// changes the sale records the release as lapsed; a confirm then exits
// with ErrHoldLapsed.
func TestRedisHoldLapses(t *testing.T) {
	ctx := context.Background()
	_, r := newRedisSale(t, "lapse", 5)
	h, err := r.Hold(ctx, "ann", 2, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for {
		st, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		if st.Held() == 0 {
			if st.Left() != 5 || st.Version() != 2 {
				t.Fatalf("read after the lapse: %v version %d", st, st.Version())
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	rep := mustBalance(t, r)
	if !strings.Contains(rep.Pending, "lapsed") {
		t.Fatalf("verify: pending %q, want the lapse", rep.Pending)
	}
	if n := r.client.XLen(ctx, r.journalKey()).Val(); n != 1 {
		t.Fatalf("the readers wrote: %d entries", n)
	}
	if _, err := r.Confirm(ctx, h.Hold.Hold); !errors.Is(err, ticket.ErrHoldLapsed) {
		t.Fatalf("confirm after the lapse: %v", err)
	}
	var last ticket.Record
	for rec, err := range r.Sales() {
		if err != nil {
			t.Fatal(err)
		}
		last = rec
	}
	if last.Kind != ticket.KindRelease || last.Reason != ticket.ReasonLapsed || last.Left != 5 || last.Hold != h.Hold.Hold {
		t.Fatalf("the lapse's record: %+v", last)
	}
	if rep := mustBalance(t, r); rep.Pending != "" || rep.Booked.Lapsed != 2 {
		t.Fatalf("verify after: %+v", rep)
	}
}

// TestRedisLimitRace: many processes buy (or hold) as one buyer against a
// limit of K: exactly K succeed, the rest are refused with ErrLimit (exit
// 8), and the buyer's holding is K. The negative control switches the
// limit check off in the children (the scripts' flag L), and the same race
// then gives the buyer more than K, which Verify reports.
func TestRedisLimitRace(t *testing.T) {
	const n, k = 12, 3
	for _, control := range []bool{false, true} {
		for _, op := range []string{"buy", "hold"} {
			t.Run(fmt.Sprintf("%s/control=%v", op, control), func(t *testing.T) {
				srv, r := newLimitSale(t, 2*n, k)
				env := []string{childOp + "=" + op, childBuyer + "=alice", childArg + "=1h"}
				if control {
					env = append(env, childNoLimit+"=1")
				}
				cmds := make([]*exec.Cmd, n)
				for i := range cmds {
					cmds[i] = child(t, srv.URL("book"), env...)
					if err := cmds[i].Start(); err != nil {
						t.Fatal(err)
					}
				}
				count := map[int]int{}
				for _, cmd := range cmds {
					count[exitCode(cmd.Wait())]++
				}
				have, err := r.client.HGet(context.Background(), r.key("holdings"), "alice").Int64()
				if err != nil {
					t.Fatal(err)
				}
				if control {
					if count[0] <= k || have <= k {
						t.Fatalf("without the check: %v, alice has %d: the race never overstepped the limit, so it proves nothing", count, have)
					}
					rep, err := r.Verify(context.Background())
					if err != nil || !strings.Contains(strings.Join(rep.Problems, "\n"), "more than the limit") {
						t.Fatalf("verify did not find alice above the limit: %q, %v", rep.Problems, err)
					}
					return
				}
				if count[0] != k || count[8] != n-k || have != k {
					t.Fatalf("exits %v (want %d of 0, %d of 8), alice has %d", count, k, n-k, have)
				}
				mustBalance(t, r)
			})
		}
	}
}

// TestRedisConfirmRacesExpiry: a confirm sent as its hold expires, while
// another process records lapses: exactly one outcome each round, the
// ticket sold once (the confirm exits 0, no lapse recorded) or back in
// stock once (it exits 9, one lapse recorded), and the books balance.
func TestRedisConfirmRacesExpiry(t *testing.T) {
	ctx := context.Background()
	srv, r := newRedisSale(t, "race", 100)
	outcomes := map[int]int{}
	for round := range 12 {
		const d = 300 * time.Millisecond
		h, err := r.Hold(ctx, "ann", 1, d)
		if err != nil {
			t.Fatal(err)
		}
		// Both children connect first, then wait at a gate (stdin), which
		// opens around the expiry: from 6 ms before it to 5 ms after.
		confirm := child(t, srv.URL("race"), childOp+"=confirm", childArg+"="+h.Hold.Hold, childGate+"=1")
		settle := child(t, srv.URL("race"), childOp+"=settle", childGate+"=1")
		var gates []io.WriteCloser
		for _, c := range []*exec.Cmd{confirm, settle} {
			w, err := c.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			gates = append(gates, w)
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Until(h.Hold.Expires.Add(time.Duration(round-6) * time.Millisecond)))
		for _, w := range gates {
			_, _ = w.Write([]byte{1})
			w.Close()
		}
		code := exitCode(confirm.Wait())
		if c := exitCode(settle.Wait()); c != 0 {
			t.Fatalf("settle exits %d", c)
		}
		if err := r.settle(ctx); err != nil { // a hold not yet expired when settle ran
			t.Fatal(err)
		}
		var confirms, lapses int
		for rec, err := range r.Sales() {
			if err != nil {
				t.Fatal(err)
			}
			if rec.Hold == h.Hold.Hold && rec.Kind == ticket.KindConfirm {
				confirms++
			}
			if rec.Hold == h.Hold.Hold && rec.Kind == ticket.KindRelease {
				lapses++
			}
		}
		switch {
		case code == 0 && confirms == 1 && lapses == 0:
		case code == 9 && confirms == 0 && lapses == 1:
		default:
			t.Fatalf("round %d: confirm exits %d; the journal holds %d confirms and %d releases of hold %s", round, code, confirms, lapses, h.Hold.Hold)
		}
		outcomes[code]++
		mustBalance(t, r)
	}
	st, err := r.Read()
	if err != nil || st.Sold() != int64(outcomes[0]) || st.Left() != 100-int64(outcomes[0]) || st.Held() != 0 {
		t.Fatalf("after the rounds: %v, %v; confirmed %d", st, err, outcomes[0])
	}
	t.Logf("confirmed %d, lapsed first %d", outcomes[0], outcomes[9])
}

// TestRedisBookingKill9: a process killed with SIGKILL in the middle of a
// hold, a confirm or a return, then the same request retried with the same
// request id: one record in the journal for it, whatever moment the kill
// came at, and books that balance.
func TestRedisBookingKill9(t *testing.T) {
	ctx := context.Background()
	srv, r := newRedisSale(t, "kill", 1000)
	url := srv.URL("kill")
	killed := 0
	count := func(id string) int {
		n := 0
		for _, e := range r.client.XRange(ctx, r.journalKey(), "-", "+").Val() {
			if e.Values["request"] == id {
				n++
			}
		}
		return n
	}
	for i := range 12 {
		id := fmt.Sprintf("kill-%d", i)
		// A hold, killed, retried.
		cmd := child(t, url, childOp+"=hold", childBuyer+"=k", childArg+"=1h", childID+"="+id+"-h")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i*i) * 300 * time.Microsecond)
		_ = cmd.Process.Kill()
		if exitCode(cmd.Wait()) == -1 {
			killed++
		}
		h, err := r.HoldRequest(ctx, id+"-h", "k", 1, time.Hour)
		if err != nil || count(id+"-h") != 1 {
			t.Fatalf("retried hold %s: %+v, %v; %d records", id, h, err, count(id+"-h"))
		}
		// Its confirm, killed, retried.
		cmd = child(t, url, childOp+"=confirm", childArg+"="+h.Hold.Hold, childID+"="+id+"-c")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i*i) * 300 * time.Microsecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		rc, err := r.ConfirmRequest(ctx, id+"-c", h.Hold.Hold)
		if err != nil || rc.Sale.Kind != ticket.KindConfirm || count(id+"-c") != 1 {
			t.Fatalf("retried confirm %s: %+v, %v; %d records", id, rc, err, count(id+"-c"))
		}
		// A return of it, killed, retried.
		cmd = child(t, url, childOp+"=return", childArg+"="+strconv.FormatInt(rc.Sale.Seq, 10), childID+"="+id+"-r")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i*i) * 300 * time.Microsecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		rec, err := r.ReturnRequest(ctx, id+"-r", rc.Sale.Seq, 1)
		if err != nil || rec.Kind != ticket.KindReturn || count(id+"-r") != 1 {
			t.Fatalf("retried return %s: %+v, %v; %d records", id, rec, err, count(id+"-r"))
		}
	}
	rep := mustBalance(t, r)
	if rep.State.Left() != 1000 || rep.Booked.Confirms != 12 || rep.Booked.Returned != 12 {
		t.Fatalf("after the kills: %v, %+v", rep.State, rep.Booked)
	}
	t.Logf("%d of 12 holds killed before they ended", killed)
}

// TestRedisReturnFindsItsSale: a return finds its sale by a binary search
// of the stream, among sales made over many milliseconds and many within
// one (a pipeline of buys), and holds and confirms between them; a request
// id of a hold is not a buy's.
func TestRedisReturnFindsItsSale(t *testing.T) {
	ctx := context.Background()
	_, r := newRedisSale(t, "find", 10000)
	buyers := map[int64]string{}
	for i := range 60 {
		if i%7 == 0 {
			h, err := r.Hold(ctx, "holder", 1, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := r.Confirm(ctx, h.Hold.Hold)
			if err != nil {
				t.Fatal(err)
			}
			buyers[rc.Sale.Seq] = "holder"
			continue
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for j := range 5 { // several in one millisecond, as often as not
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := fmt.Sprintf("b%d-%d", i, j)
				rc, err := r.Buy(ctx, b, 2)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				buyers[rc.Sale.Seq] = b
				mu.Unlock()
			}()
		}
		wg.Wait()
		if i%10 == 0 {
			time.Sleep(3 * time.Millisecond)
		}
	}
	for seq, b := range buyers {
		rec, err := r.Return(ctx, seq, 1)
		if err != nil || rec.Buyer != b || rec.Sale != seq {
			t.Fatalf("return of sale #%d (%s's): %+v, %v", seq, b, rec, err)
		}
	}
	for seq := range buyers {
		if _, err := r.Return(ctx, seq, 2); !errors.Is(err, ticket.ErrReturn) && buyers[seq] != "holder" {
			t.Fatalf("second return of sale #%d: %v", seq, err)
		}
	}
	mustBalance(t, r)
	if _, err := r.HoldRequest(ctx, "same-id", "ann", 1, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := r.BuyRequest(ctx, "same-id", "ann", 1); !errors.Is(err, ErrRequestID) {
		t.Fatalf("a buy with a hold's request id: %v", err)
	}
	if _, err := r.ConfirmRequest(ctx, "same-id", "1-00000000"); !errors.Is(err, ErrRequestID) {
		t.Fatalf("a confirm with a hold's request id: %v", err)
	}
	h, err := r.HoldRequest(ctx, "same-id", "ann", 1, time.Hour)
	if err != nil {
		t.Fatalf("the hold retried: %v", err)
	}
	// init --force starts a new sale: no holds, no closed holds, no returns.
	if _, _, err := r.InitLimit(ctx, 5, 2, store.Replace); err != nil {
		t.Fatal(err)
	}
	st, err := r.Read()
	holds, herr := r.OpenHolds()
	if err != nil || herr != nil || st.Held() != 0 || len(holds) != 0 || st.Limit() != 2 || st.Left() != 5 {
		t.Fatalf("after init --force: %v held %d holds %v limit %d, %v %v", st, st.Held(), holds, st.Limit(), err, herr)
	}
	if _, err := r.Confirm(ctx, h.Hold.Hold); !errors.Is(err, ticket.ErrUnknownHold) {
		t.Fatalf("confirm of the old sale's hold: %v", err)
	}
	for _, k := range r.bookingKeys() {
		if n := r.client.Exists(ctx, k).Val(); n != 0 {
			t.Errorf("%s is left after init --force", k)
		}
	}
	mustBalance(t, r)
}

// luaCommands runs fn and returns the commands the server's scripts ran
// meanwhile, as MONITOR shows them (on a connection of its own): each its
// words, unquoted.
func luaCommands(t *testing.T, r *Store, fn func()) [][]string {
	t.Helper()
	ctx := context.Background()
	conn, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("MONITOR: %q, %v", line, err)
	}
	fn()
	const end = "ticket-test-end-of-monitor"
	r.client.Echo(ctx, end)
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	quoted := regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
	var out [][]string
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("MONITOR: %v", err)
		}
		if strings.Contains(line, end) {
			return out
		}
		if _, rest, ok := strings.Cut(line, " lua] "); ok {
			var words []string
			for _, w := range quoted.FindAllStringSubmatch(rest, -1) {
				words = append(words, w[1])
			}
			out = append(out, words)
		}
	}
}

// scans returns the commands of cmds that read more than a bounded number
// of elements: a whole hash, a range without a COUNT or LIMIT.
func scans(cmds [][]string) []string {
	var bad []string
	for _, c := range cmds {
		name := strings.ToUpper(c[0])
		args := strings.ToUpper(strings.Join(c, " "))
		switch {
		case name == "HGETALL", name == "HKEYS", name == "HVALS", name == "HSCAN", name == "SCAN", name == "KEYS":
			bad = append(bad, strings.Join(c, " "))
		case (name == "XRANGE" || name == "XREVRANGE") && !strings.Contains(args, " COUNT "):
			bad = append(bad, strings.Join(c, " "))
		case strings.HasPrefix(name, "ZRANGE") && !strings.Contains(args, " LIMIT "):
			bad = append(bad, strings.Join(c, " "))
		}
	}
	return bad
}

// TestRedisBookingCost: a buy, hold, confirm or release under a limit
// runs the same commands, none of which reads more than a few elements,
// in a sale of one record as in one of thousands with hundreds of buyers:
// no scan of the journal or of the buyers. The change of the limit, which
// must read every buyer's holding, is the control that the check finds a
// scan.
func TestRedisBookingCost(t *testing.T) {
	ctx := context.Background()
	ops := func(r *Store, buyer string) map[string][][]string {
		got := map[string][][]string{}
		var h store.HoldReceipt
		got["buy"] = luaCommands(t, r, func() {
			if _, err := r.Buy(ctx, buyer, 1); err != nil {
				t.Fatal(err)
			}
		})
		got["hold"] = luaCommands(t, r, func() {
			var err error
			if h, err = r.Hold(ctx, buyer, 1, time.Hour); err != nil {
				t.Fatal(err)
			}
		})
		got["confirm"] = luaCommands(t, r, func() {
			if _, err := r.Confirm(ctx, h.Hold.Hold); err != nil {
				t.Fatal(err)
			}
		})
		h2, err := r.Hold(ctx, buyer, 1, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		got["release"] = luaCommands(t, r, func() {
			if _, err := r.Release(ctx, h2.Hold.Hold); err != nil {
				t.Fatal(err)
			}
		})
		got["limit"] = luaCommands(t, r, func() {
			if _, _, err := r.SetLimit(ctx, 6); err != nil {
				t.Fatal(err)
			}
		})
		return got
	}
	_, small := newLimitSale(t, 100000, 5)
	_, big := newLimitSale(t, 100000, 5)
	for i := range 400 {
		b := fmt.Sprintf("b%d", i)
		if _, err := big.Buy(ctx, b, 2); err != nil {
			t.Fatal(err)
		}
		h, err := big.Hold(ctx, b, 1, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := big.Confirm(ctx, h.Hold.Hold); err != nil {
				t.Fatal(err)
			}
		}
	}
	one, many := ops(small, "ann"), ops(big, "ann")
	for _, op := range []string{"buy", "hold", "confirm", "release"} {
		if bad := scans(many[op]); len(bad) > 0 {
			t.Errorf("%s scans: %q", op, bad)
		}
		if len(one[op]) != len(many[op]) {
			t.Errorf("%s runs %d commands in a sale of one record, %d in one of %d", op, len(one[op]), len(many[op]), big.client.XLen(ctx, big.journalKey()).Val())
		}
		if len(many[op]) == 0 {
			t.Errorf("%s: MONITOR showed no command of the script", op)
		}
		t.Logf("%s: %d commands", op, len(many[op]))
	}
	if bad := scans(many["limit"]); len(bad) == 0 {
		t.Errorf("the change of the limit reads every buyer's holding, but the check found no scan in %q", many["limit"])
	}
	mustBalance(t, big)
}

// TestRedisRepairBooking: a sale with a limit, open holds, confirms and
// returns whose state hash is lost is rebuilt from its journal with its
// held tickets and its limit; its open holds, which their own keys keep,
// are then confirmed, and the limit still holds. Repair also records the
// lapses that readers only counted.
func TestRedisRepairBooking(t *testing.T) {
	ctx := context.Background()
	_, r := newLimitSale(t, 10, 3)
	h, err := r.Hold(ctx, "ann", 2, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Buy(ctx, "cat", 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Return(ctx, b.Sale.Seq, 1); err != nil {
		t.Fatal(err)
	}
	bob, err := r.Hold(ctx, "bob", 1, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(bob.Hold.Expires) + 20*time.Millisecond) // bob's hold expires, no script records it
	if v := mustBalance(t, r); !strings.Contains(v.Pending, "lapsed") {
		t.Fatalf("verify before the repair: pending %q, want bob's lapse", v.Pending)
	}
	if err := r.client.Del(ctx, r.stateKey()).Err(); err != nil {
		t.Fatal(err)
	}
	var missing *StateMissingError
	if _, err := r.Read(); !errors.As(err, &missing) {
		t.Fatalf("read without the state: %v", err)
	}
	rep, err := r.Repair(ctx)
	if err != nil || rep.Sales == 0 {
		t.Fatalf("repair: %+v, %v", rep, err)
	}
	st, err := r.Read()
	holds, herr := r.OpenHolds()
	if err != nil || herr != nil || st.Limit() != 3 || st.Held() != 2 || st.Left() != 6 || len(holds) != 1 {
		t.Fatalf("after the repair: %v held %d limit %d holds %v, %v %v", st, st.Held(), st.Limit(), holds, err, herr)
	}
	// Repair recorded bob's lapse, which the buy would have recorded first.
	if v := mustBalance(t, r); v.Pending != "" || v.Booked.Lapsed != 1 {
		t.Fatalf("verify after the repair: pending %q, %+v", v.Pending, v.Booked)
	}
	if _, err := r.Buy(ctx, "cat", 2); !errors.Is(err, ticket.ErrLimit) {
		t.Fatalf("cat, 2 of 3 after the return, buys 2: %v", err)
	}
	if _, err := r.Confirm(ctx, h.Hold.Hold); err != nil {
		t.Fatal(err)
	}
	mustBalance(t, r)
}
