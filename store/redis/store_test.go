package redis

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redistest"
	"github.com/ticketd/ticket/ticket"
)

// openRedis opens the sale name on srv, closed when the test ends.
func openRedis(t *testing.T, spec string) *Store {
	t.Helper()
	r, err := Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// newRedisSale starts a server and creates the sale name on it with n
// tickets; both are gone when the test ends.
func newRedisSale(t *testing.T, name string, n int64) (*redistest.Server, *Store) {
	t.Helper()
	srv := redistest.Start(t)
	r := openRedis(t, srv.URL(name))
	if _, _, err := r.Init(context.Background(), n, store.Create); err != nil {
		t.Fatal(err)
	}
	return srv, r
}

func TestRedisInitBuyVerify(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	r := openRedis(t, srv.URL("t1"))
	if _, err := r.Read(); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read before init: %v, want store.ErrNotFound", err)
	}
	if _, err := r.Buy(ctx, "early", 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("buy before init: %v, want store.ErrNotFound", err)
	}
	if _, _, err := r.Init(ctx, 3, store.Create); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Init(ctx, 3, store.Create); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second init: %v, want store.ErrExists", err)
	}
	rc, err := r.Buy(ctx, "ann", 2)
	if err != nil || rc.Sale.Seq != 1 || rc.State.Left() != 1 {
		t.Fatalf("buy 2 of 3: %+v, %v", rc, err)
	}
	rc, err = r.Buy(ctx, "bob", 2)
	if !errors.Is(err, ticket.ErrSoldOut) || rc.State.Left() != 1 || rc.Sale.Seq != 0 {
		t.Fatalf("buy 2 of 1: %+v, %v; want sold out with 1 left", rc, err)
	}
	if _, err := r.Buy(ctx, "cid", 1); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Verify(ctx)
	if err != nil || !rep.Balanced() || rep.Sales != 2 || rep.Tickets != 3 || rep.State.Left() != 0 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	var buyers []string
	for s, err := range r.Sales() {
		if err != nil {
			t.Fatal(err)
		}
		buyers = append(buyers, s.Buyer)
	}
	if strings.Join(buyers, ",") != "ann,cid" {
		t.Fatalf("sales: %v", buyers)
	}
	_, archive, err := r.Init(ctx, 5, store.Replace)
	if err != nil || archive == "" {
		t.Fatalf("init --force: archive %q, %v; want the old journal kept", archive, err)
	}
	if st, _ := r.Read(); st.Left() != 5 || st.Version() != 0 {
		t.Fatalf("after reset: %+v", st)
	}
	// The largest sale Lua's doubles count exactly, and one beyond it.
	if _, _, err := r.Init(ctx, MaxCount+1, store.Replace); !errors.Is(err, ticket.ErrInvalid) {
		t.Fatalf("init %d: %v, want refused", int64(MaxCount+1), err)
	}
	if _, _, err := r.Init(ctx, MaxCount, store.Replace); err != nil {
		t.Fatal(err)
	}
	if rc, err := r.Buy(ctx, "ann", 1); err != nil || rc.State.Left() != MaxCount-1 {
		t.Fatalf("buy 1 of %d: %+v, %v", int64(MaxCount), rc, err)
	}
	if rep, err := r.Verify(ctx); err != nil || !rep.Balanced() || rep.State.Left() != MaxCount-1 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestRedisVerifyFindsDiscrepancies tampers with the state behind the
// script's back: verify must say the books do not balance.
func TestRedisVerifyFindsDiscrepancies(t *testing.T) {
	ctx := context.Background()
	_, r := newRedisSale(t, "t2", 5)
	if _, err := r.Buy(ctx, "ann", 1); err != nil {
		t.Fatal(err)
	}
	if err := r.client.HSet(ctx, r.stateKey(), "left", 3).Err(); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Verify(ctx)
	if err != nil || rep.Balanced() {
		t.Fatalf("verify after tampering: %+v, %v; want problems", rep, err)
	}
	t.Logf("problems: %q", rep.Problems)
}

// TestRedisConcurrentBuys: many buyers at once sell exactly the stock.
func TestRedisConcurrentBuys(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	spec := srv.URL("t3")
	r := openRedis(t, spec)
	const stock, buyers = 40, 100
	if _, _, err := r.Init(ctx, stock, store.Create); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got, soldOut := 0, 0
	var wg sync.WaitGroup
	for i := range buyers {
		wg.Go(func() {
			b := openRedis(t, spec) // a client of its own, as a separate machine has
			_, err := b.Buy(ctx, "b"+string(rune('a'+i%26)), 1)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				got++
			case errors.Is(err, ticket.ErrSoldOut):
				soldOut++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got != stock || soldOut != buyers-stock {
		t.Fatalf("%d got, %d sold out; want %d and %d", got, soldOut, stock, buyers-stock)
	}
	if rep, err := r.Verify(ctx); err != nil || !rep.Balanced() || rep.State.Left() != 0 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

func TestRedisRequestIDReplay(t *testing.T) {
	ctx := context.Background()
	_, r := newRedisSale(t, "t4", 5)
	first, err := r.BuyRequest(ctx, "req-1", "ann", 2)
	if err != nil || first.Replayed {
		t.Fatalf("first: %+v, %v", first, err)
	}
	again, err := r.BuyRequest(ctx, "req-1", "ann", 2)
	if err != nil || !again.Replayed || again.Sale.Seq != first.Sale.Seq || again.State.Left() != 3 {
		t.Fatalf("retry: %+v, %v; want the original outcome, replayed", again, err)
	}
	if st, _ := r.Read(); st.Left() != 3 {
		t.Fatalf("after a retried buy of 2 from 5: %d left, want 3", st.Left())
	}
	// Negative control: the same buy with a new id is a new buy.
	if _, err := r.BuyRequest(ctx, "req-2", "ann", 2); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.Read(); st.Left() != 1 {
		t.Fatalf("after a second request: %d left, want 1", st.Left())
	}
	// A sold-out answer stores nothing; the sales' request ids are kept in
	// a hash without a TTL, which no eviction policy that spares such keys
	// can drop.
	if _, err := r.BuyRequest(ctx, "req-3", "bob", 2); !errors.Is(err, ticket.ErrSoldOut) {
		t.Fatalf("req-3: %v, want sold out", err)
	}
	if ids := r.client.HKeys(ctx, r.requestsKey()).Val(); strings.Join(ids, ",") != "req-1,req-2" {
		t.Fatalf("request ids stored: %v, want req-1,req-2", ids)
	}
	if ttl := r.client.PTTL(ctx, r.requestsKey()).Val(); ttl != -1 {
		t.Fatalf("requests hash TTL %v, want none (-1)", ttl)
	}
}

// TestRedisLostReply: the server makes the sale, the reply is lost, the
// buyer sees an unreachable backend (not sold out) and its retry with the
// same request id gets the original sale instead of buying again.
func TestRedisLostReply(t *testing.T) {
	ctx := context.Background()
	srv, r := newRedisSale(t, "t5", 5)
	// Once, the reply to a script call is lost with the connection.
	d := redistest.StartProxy(t, srv.Addr(), redistest.DropScriptReply)
	b := openRedis(t, d.URL(srv.URL("t5")))
	_, err := b.BuyRequest(ctx, "lost-1", "ann", 1)
	if !errors.Is(err, store.ErrUnreachable) || errors.Is(err, ticket.ErrSoldOut) {
		t.Fatalf("buy whose reply is lost: %v; want store.ErrUnreachable", err)
	}
	t.Logf("lost reply: %v", err)
	if !strings.Contains(err.Error(), "lost-1") {
		t.Errorf("the error does not name the request id to retry with: %v", err)
	}
	if st, _ := r.Read(); st.Left() != 4 {
		t.Fatalf("the server has %d left; the relay should have let the sale through", st.Left())
	}
	rc, err := b.BuyRequest(ctx, "lost-1", "ann", 1)
	if err != nil || !rc.Replayed || rc.Sale.Seq != 1 {
		t.Fatalf("retry: %+v, %v; want sale #1, replayed", rc, err)
	}
	if st, _ := r.Read(); st.Left() != 4 {
		t.Fatalf("after the retry %d left, want 4: the retry bought again", st.Left())
	}
}

func TestRedisUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r := openRedis(t, "redis://"+addr+"/0?name=t6&dial_timeout=1s")
	for name, err := range map[string]error{
		"read": func() error { _, err := r.Read(); return err }(),
		"buy":  func() error { _, err := r.Buy(context.Background(), "ann", 1); return err }(),
		"init": func() error { _, _, err := r.Init(context.Background(), 1, store.Create); return err }(),
	} {
		if !errors.Is(err, store.ErrUnreachable) || errors.Is(err, ticket.ErrSoldOut) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line wrapping store.ErrUnreachable", name, err)
		}
	}
}

func TestRedisAuth(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "s3cret")
	t.Setenv(PasswordEnv, "")
	r := openRedis(t, srv.URL("t7"))
	_, err := r.Read()
	if !errors.Is(err, store.ErrUnreachable) || !strings.Contains(err.Error(), "authentication") {
		t.Fatalf("no password: %v; want an authentication error wrapping store.ErrUnreachable", err)
	}
	t.Setenv(PasswordEnv, "s3cret")
	r = openRedis(t, srv.URL("t7"))
	if _, _, err := r.Init(context.Background(), 1, store.Create); err != nil {
		t.Fatalf("with %s: %v", PasswordEnv, err)
	}
}

func TestRedisDurability(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		canLose bool
		known   bool
	}{
		{"none", nil, true, true},
		{"everysec", []string{"--appendonly", "yes", "--appendfsync", "everysec"}, true, true},
		{"always", []string{"--appendonly", "yes", "--appendfsync", "always"}, false, true},
		{"config disabled", []string{"--appendonly", "yes", "--appendfsync", "always", "--rename-command", "CONFIG", ""}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, tc.args...)
			d, err := openRedis(t, srv.URL("d")).Durability(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if d.CanLose() != tc.canLose || d.Known != tc.known {
				t.Fatalf("%+v: CanLose %v Known %v, want %v %v", d, d.CanLose(), d.Known, tc.canLose, tc.known)
			}
			t.Logf("%s", d)
		})
	}
}

// TestRestoreRoundTrip copies a sale from a file to Redis and back:
// state and journal arrive whole, and both sides balance.
func TestRestoreRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.json")
	f := store.Open(path, store.Options{})
	if _, _, err := f.Init(ctx, 10, store.Create); err != nil {
		t.Fatal(err)
	}
	for _, q := range []int64{1, 3, 2} {
		if _, err := f.Buy(ctx, "ann", q); err != nil {
			t.Fatal(err)
		}
	}
	r := openRedis(t, srv.URL("copy"))
	copySale := func(src, dst store.Backend, mode store.Mode) error {
		rep, err := src.Verify(ctx)
		if err != nil {
			return err
		}
		var sales []ticket.Record
		for s, err := range src.Sales() {
			if err != nil {
				return err
			}
			sales = append(sales, s)
		}
		_, err = dst.Restore(ctx, rep.State, sales, mode)
		return err
	}
	if err := copySale(f, r, store.Create); err != nil {
		t.Fatal(err)
	}
	if err := copySale(f, r, store.Create); !errors.Is(err, store.ErrExists) {
		t.Fatalf("copy over an existing sale: %v, want store.ErrExists", err)
	}
	if _, err := r.Buy(ctx, "bob", 4); err != nil { // the peak, in Redis
		t.Fatal(err)
	}
	if err := copySale(r, f, store.Replace); err != nil {
		t.Fatal(err)
	}
	rep, err := f.Verify(ctx)
	if err != nil || !rep.Balanced() || rep.Sales != 4 || rep.State.Left() != 0 {
		t.Fatalf("file after the round trip: %+v, %v", rep, err)
	}
}

// TestRedisTimeout pauses the server (CLIENT PAUSE) past the buyer's
// read_timeout: the buy fails as unreachable, naming the timeout, with an
// unknown outcome (the server may run the queued script when the pause
// ends, or drop it with the closed connection). Retried with the same
// request id until the server answers, it makes exactly one sale either way.
func TestRedisTimeout(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	admin := openRedis(t, srv.URL("t8"))
	if _, _, err := admin.Init(ctx, 5, store.Create); err != nil {
		t.Fatal(err)
	}
	b := openRedis(t, srv.URL("t8")+"&read_timeout=200ms")
	if _, err := b.Read(); err != nil { // connected before the pause
		t.Fatal(err)
	}
	if err := admin.client.Do(ctx, "CLIENT", "PAUSE", "1000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := b.BuyRequest(ctx, "slow-1", "ann", 1)
	if !errors.Is(err, store.ErrUnreachable) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("buy during a pause: %v; want a timeout wrapping store.ErrUnreachable", err)
	}
	t.Logf("timed out: %v", err)
	var rc store.Receipt
	for range 100 { // 200ms each: the 1s pause ends long before
		if rc, err = b.BuyRequest(ctx, "slow-1", "ann", 1); !errors.Is(err, store.ErrUnreachable) {
			break
		}
	}
	if err != nil || rc.Sale.Seq != 1 {
		t.Fatalf("retry after the pause: %+v, %v; want sale #1", rc, err)
	}
	t.Logf("the retry was answered with the original outcome: %v", rc.Replayed)
	if st, _ := admin.Read(); st.Left() != 4 {
		t.Fatalf("%d left after one buy retried, want 4", st.Left())
	}
}

// mustAt is ticket.At for states the test knows are valid.
func mustAt(t *testing.T, version, left, total int64) ticket.State {
	t.Helper()
	st, err := ticket.At(version, left, total)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
