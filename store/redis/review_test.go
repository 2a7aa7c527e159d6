package redis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redistest"
	"github.com/ticketd/ticket/ticket"
)

// TestRedisDamagedKeysChangeNothing: a buy refuses a sale whose keys were
// damaged by hand, and writes nothing: Redis keeps the writes of a script
// that fails halfway, so the script must check everything first.
func TestRedisDamagedKeysChangeNothing(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		damage func(c *goredis.Client, r *Store) error
	}{
		{"journal is not a stream", func(c *goredis.Client, r *Store) error { return c.Set(ctx, r.journalKey(), "oops", 0).Err() }},
		{"left above total", func(c *goredis.Client, r *Store) error { return c.HSet(ctx, r.stateKey(), "left", "20").Err() }},
		{"left in exponent form", func(c *goredis.Client, r *Store) error { return c.HSet(ctx, r.stateKey(), "left", "1e1").Err() }},
		{"left a fraction", func(c *goredis.Client, r *Store) error { return c.HSet(ctx, r.stateKey(), "left", "2.5").Err() }},
		{"left infinite", func(c *goredis.Client, r *Store) error { return c.HSet(ctx, r.stateKey(), "left", "inf").Err() }},
		{"left negative", func(c *goredis.Client, r *Store) error { return c.HSet(ctx, r.stateKey(), "left", "-3").Err() }},
		{"requests key is a list", func(c *goredis.Client, r *Store) error { return c.RPush(ctx, r.requestsKey(), "x").Err() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.NewReplacer(" ", "-").Replace(tc.name)
			r := openRedis(t, srv.URL(name))
			if _, _, err := r.Init(ctx, 10, store.Create); err != nil {
				t.Fatal(err)
			}
			c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
			defer c.Close()
			if err := tc.damage(c, r); err != nil {
				t.Fatal(err)
			}
			before := dump(t, c, r)
			for range 2 { // the retry the message might suggest must not buy either
				_, err := r.BuyRequest(ctx, "R1", "x", 1)
				if err == nil || errors.Is(err, store.ErrUnreachable) || errors.Is(err, ticket.ErrSoldOut) {
					t.Fatalf("buy = %v, want a refusal that is neither unreachable nor sold out", err)
				}
			}
			if after := dump(t, c, r); after != before {
				t.Errorf("the keys changed:\n%s\n->\n%s", before, after)
			}
		})
	}
}

// dump is the sale's keys as text, to compare before and after.
func dump(t *testing.T, c *goredis.Client, r *Store) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, k := range []string{r.stateKey(), r.journalKey(), r.requestsKey()} {
		typ := c.Type(ctx, k).Val()
		b.WriteString(k + " " + typ + ": ")
		switch typ {
		case "hash":
			b.WriteString(strings.Join(strings.Fields(strings.Trim(strings.ReplaceAll(strings.ReplaceAll(
				c.HGetAll(ctx, k).String(), "map[", ""), "]", ""), " ")), " "))
		case "string":
			b.WriteString(c.Get(ctx, k).Val())
		case "stream":
			b.WriteString(time.Duration(c.XLen(ctx, k).Val()).String())
		case "list":
			b.WriteString(strings.Join(c.LRange(ctx, k, 0, -1).Val(), ","))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestRedisRequestIDIsBoundToItsBuy: a request id answers only the buy it
// was made for, in the sale it was made in.
func TestRedisRequestIDIsBoundToItsBuy(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	r := openRedis(t, srv.URL("bound"))
	if _, _, err := r.Init(ctx, 5, store.Create); err != nil {
		t.Fatal(err)
	}
	if _, err := r.BuyRequest(ctx, "A", "alice", 1); err != nil {
		t.Fatal(err)
	}
	var mm *RequestMismatchError
	if _, err := r.BuyRequest(ctx, "A", "bob", 2); !errors.As(err, &mm) || mm.Buyer != "alice" || mm.Qty != "1" {
		t.Fatalf("reused id for another buy = %v, want a RequestMismatchError naming alice x1", err)
	}
	if st, _ := r.Read(); st.Left() != 4 {
		t.Fatalf("left %d after the refused reuse, want 4", st.Left())
	}
	rc, err := r.BuyRequest(ctx, "A", "alice", 1)
	if err != nil || !rc.Replayed || rc.Sale.Seq != 1 {
		t.Fatalf("the same buy again = %+v, %v; want the replay of sale #1", rc, err)
	}
	// A reset sale is a new sale: the old id buys afresh there.
	if _, _, err := r.Init(ctx, 10, store.Replace); err != nil {
		t.Fatal(err)
	}
	rc, err = r.BuyRequest(ctx, "A", "alice", 1)
	if err != nil || rc.Replayed || rc.Sale.Seq != 1 || rc.State.Left() != 9 {
		t.Fatalf("the old id after init --force = %+v, %v; want a fresh sale #1 with 9 left", rc, err)
	}
}

// TestRedisAuthOnBuy: a buy without the password is an authentication
// failure (store.ErrUnreachable), not a protocol error with an unknown outcome.
func TestRedisAuthOnBuy(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "s3cret")
	t.Setenv(PasswordEnv, "")
	r := openRedis(t, srv.URL("auth"))
	_, err := r.Buy(context.Background(), "x", 1)
	if !errors.Is(err, store.ErrUnreachable) || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("buy without the password = %v, want an authentication failure", err)
	}
}

// TestRedisURLErrorHidesThePassword: a URL that does not parse is named
// without the password in it.
func TestRedisURLErrorHidesThePassword(t *testing.T) {
	_, err := Open("redis://:s3cret@127.0.0.1:abc/0?name=a")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open = %v, want an error without the password", err)
	}
}

// TestRedisSalesPages: Sales reads the journal in pages of 1000; a sale
// of 2500 comes back whole and in order, through show --sales and copy.
func TestRedisSalesPages(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	const n = 2500
	sales := make([]ticket.Record, n)
	now := time.Now()
	for i := range sales {
		sales[i] = ticket.Record{Seq: int64(i + 1), Buyer: "p", Qty: 1, Left: int64(n - i - 1), PID: 1, Time: now}
	}
	state, _ := ticket.At(n, 0, n) // n sales of one
	r := openRedis(t, srv.URL("pages"))
	if _, err := r.Restore(ctx, state, sales, store.Create); err != nil {
		t.Fatal(err)
	}
	var got int64
	for sale, err := range r.Sales() {
		if err != nil {
			t.Fatal(err)
		}
		got++
		if sale.Seq != got {
			t.Fatalf("sale %d has seq %d", got, sale.Seq)
		}
	}
	if got != n {
		t.Fatalf("Sales yielded %d, want %d", got, n)
	}
}

// TestRedisURLName: the sale's name is given once and not empty; left out,
// it is "ticket".
func TestRedisURLName(t *testing.T) {
	for _, spec := range []string{"redis://127.0.0.1:1/0?name=", "redis://127.0.0.1:1/0?name=a&name=b"} {
		if _, err := Open(spec); err == nil {
			t.Errorf("Open(%q) = nil error, want a refusal", spec)
		}
	}
	r, err := Open("redis://127.0.0.1:1/0")
	if err != nil || r.Name() != "ticket" {
		t.Fatalf("Open without name: %v, %v; want the sale \"ticket\"", r, err)
	}
	r.Close()
}
