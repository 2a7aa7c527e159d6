package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redistest"
	"github.com/ticketd/ticket/ticket"
)

// fill writes 1 KiB values under keys of their own (with ttl, if not 0)
// until the server has evicted keys for several times its maxmemory, or
// refuses writes (out of memory). It returns the keys evicted meanwhile
// and whether the server refused.
func fill(t *testing.T, c *goredis.Client, ttl time.Duration) (evicted int64, oom bool) {
	t.Helper()
	ctx := context.Background()
	val := strings.Repeat("x", 1024)
	for batch := 0; batch < 40; batch++ { // 40 x 500 x 1 KiB = 20 MiB into 3 MiB
		_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i := range 500 {
				p.Set(ctx, fmt.Sprintf("filler:%d:%d", batch, i), val, ttl)
			}
			return nil
		})
		if err != nil {
			if strings.HasPrefix(err.Error(), "OOM") {
				oom = true
				break
			}
			t.Fatal(err)
		}
	}
	for _, line := range strings.Split(c.Info(ctx, "stats").Val(), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "evicted_keys:"); ok {
			fmt.Sscan(v, &evicted)
		}
	}
	return evicted, oom
}

// TestRedisEvictionPolicies: under every maxmemory-policy, with the
// server's memory full, a buy retried with its request id gets its
// original sale, never a second one. The volatile-* policies evict keys
// with a TTL, and the sale's keys have none; noeviction evicts nothing
// (and a new buy is refused as out of memory, whole); the allkeys-*
// policies may evict anything, so a buy is refused there unless the URL
// accepts it (allow_eviction=yes).
//
// Negative controls: with the request ids in a hash with a TTL (as request
// keys had one), volatile-lru, volatile-random and volatile-ttl evict
// them and the retry sells a second ticket; with allow_eviction=yes, allkeys-lru evicts the
// sale itself.
func TestRedisEvictionPolicies(t *testing.T) {
	ctx := context.Background()
	for _, policy := range []string{"noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "allkeys-lru", "allkeys-lfu", "allkeys-random"} {
		t.Run(policy, func(t *testing.T) {
			srv := redistest.Start(t, "--maxmemory", "3mb", "--maxmemory-policy", policy)
			c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
			defer c.Close()
			r := openRedis(t, srv.URL("evict"))
			if _, _, err := r.Init(ctx, 100, store.Create); !strings.HasPrefix(policy, "allkeys-") && err != nil {
				t.Fatal(err)
			} else if strings.HasPrefix(policy, "allkeys-") {
				if err == nil || !strings.Contains(err.Error(), "maxmemory-policy "+policy) || !strings.Contains(err.Error(), ParamAllowEviction) {
					t.Fatalf("init under %s: %v; want a refusal naming the policy and the override", policy, err)
				}
				r = openRedis(t, srv.URL("evict")+"&"+ParamAllowEviction+"=yes")
				if _, _, err := r.Init(ctx, 100, store.Create); err != nil {
					t.Fatal(err)
				}
				strict := openRedis(t, srv.URL("evict"))
				_, err := strict.BuyRequest(ctx, "r1", "ann", 1)
				if err == nil || !strings.Contains(err.Error(), "maxmemory-policy "+policy) {
					t.Fatalf("buy under %s: %v; want a refusal naming the policy", policy, err)
				}
				if st, _ := r.Read(); st.Left() != 100 {
					t.Fatalf("the refused buy took tickets: %d left", st.Left())
				}
				t.Logf("refused: %v", err)
				if policy != "allkeys-lru" {
					return
				}
				// Negative control: accepted, the policy evicts the sale.
				if _, err := r.BuyRequest(ctx, "r1", "ann", 1); err != nil {
					t.Fatal(err)
				}
				evicted, _ := fill(t, c, 0)
				rc, err := r.BuyRequest(ctx, "r1", "ann", 1)
				t.Logf("control (allow_eviction=yes): %d keys evicted; the retry: %+v, %v", evicted, rc, err)
				if err == nil && rc.Replayed {
					t.Fatal("the control kept the sale through allkeys-lru eviction: the test cannot show the danger")
				}
				return
			}
			first, err := r.BuyRequest(ctx, "r1", "ann", 1)
			if err != nil {
				t.Fatal(err)
			}
			evicted, oom := fill(t, c, 48*time.Hour)
			t.Logf("%s: %d keys evicted, out of memory: %v", policy, evicted, oom)
			if policy == "noeviction" && !oom || policy != "noeviction" && evicted == 0 {
				t.Fatalf("no memory pressure: evicted %d, out of memory %v", evicted, oom)
			}
			rc, err := r.BuyRequest(ctx, "r1", "ann", 1)
			if err != nil || !rc.Replayed || rc.Sale.Seq != first.Sale.Seq {
				t.Fatalf("the retry under %s: %+v, %v; want the replay of sale #%d", policy, rc, err, first.Sale.Seq)
			}
			if st, err := r.Read(); err != nil || st.Left() != 99 {
				t.Fatalf("after the retry: %+v, %v; want 99 left", st, err)
			}
			if policy == "noeviction" {
				// Full: a new buy is refused whole, and named; reading still works.
				_, err := r.BuyRequest(ctx, "r2", "bob", 1)
				if !errors.Is(err, store.ErrUnreachable) || !strings.Contains(err.Error(), "out of memory") || !strings.Contains(err.Error(), "nothing was bought") {
					t.Fatalf("a new buy when full: %v; want out of memory, nothing bought", err)
				}
				rep, err := r.Verify(ctx)
				if err != nil || !rep.Balanced() || rep.Sales != 1 {
					t.Fatalf("verify when full: %+v, %v", rep, err)
				}
				if n := c.XLen(ctx, r.journalKey()).Val(); n != 1 {
					t.Fatalf("the refused buy left %d journal entries, want 1", n)
				}
				return
			}
			// Negative control: request ids that carry a TTL are evicted.
			testRequestsExpire = true
			defer func() { testRequestsExpire = false }()
			c.FlushAll(ctx)
			if _, _, err := r.Init(ctx, 100, store.Replace); err != nil {
				t.Fatal(err)
			}
			if _, err := r.BuyRequest(ctx, "r1", "ann", 1); err != nil {
				t.Fatal(err)
			}
			evicted, _ = fill(t, c, 48*time.Hour)
			rc, err = r.BuyRequest(ctx, "r1", "ann", 1)
			t.Logf("control (request ids with a TTL): %d keys evicted; the retry: %+v, %v", evicted, rc.Sale, err)
			if policy != "volatile-lfu" { // LFU keeps the key the test used most

				if err != nil || rc.Replayed || rc.Sale.Seq != 2 {
					t.Fatalf("the control's retry: %+v, %v; want a second sale, showing what eviction does", rc, err)
				}
			}
		})
	}
}

// TestRedisSoldOutStoresNothing: a sold-out sale answers any number of
// buyers without storing anything for them.
func TestRedisSoldOutStoresNothing(t *testing.T) {
	ctx := context.Background()
	srv, r := newRedisSale(t, "soldout", 1)
	if _, err := r.BuyRequest(ctx, "first", "ann", 1); err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer c.Close()
	keys, ids := c.DBSize(ctx).Val(), c.HLen(ctx, r.requestsKey()).Val()
	for i := range 300 {
		if _, err := r.BuyRequest(ctx, fmt.Sprintf("late-%d", i), "bob", 1); !errors.Is(err, ticket.ErrSoldOut) {
			t.Fatalf("buy %d: %v, want sold out", i, err)
		}
	}
	if k, n := c.DBSize(ctx).Val(), c.HLen(ctx, r.requestsKey()).Val(); k != keys || n != ids {
		t.Fatalf("300 sold-out buys: %d keys and %d request ids, were %d and %d", k, n, keys, ids)
	}
}

// TestRedisRequestIDsForgotten: later buys forget the request ids of sales
// older than the request TTL, a few per buy, so that the requests hash
// holds no more than the TTL's worth; an id forgotten buys afresh.
func TestRedisRequestIDsForgotten(t *testing.T) {
	ctx := context.Background()
	// Each buy reads the TTL anew: an hour while the six are bought, however
	// slowly a loaded machine runs them, then a millisecond, which they are
	// all older than.
	testRequestTTL = time.Hour
	defer func() { testRequestTTL = 0 }()
	_, r := newRedisSale(t, "forget", 100)
	for i := range 6 {
		if _, err := r.BuyRequest(ctx, fmt.Sprintf("old-%d", i), "ann", 1); err != nil {
			t.Fatal(err)
		}
	}
	bought := time.Now()
	time.Sleep(200 * time.Millisecond)
	testRequestTTL = time.Millisecond // the six are now older than the TTL
	if _, err := r.BuyRequest(ctx, "new-0", "ann", 1); err != nil {
		t.Fatal(err)
	}
	ids := r.client.HKeys(ctx, r.requestsKey()).Val()
	t.Logf("after one more buy: %v", ids)
	if len(ids) != 4 { // old-4, old-5, new-0 and the cursor
		t.Fatalf("request ids kept: %v; want old-4, old-5, new-0 and the cursor", ids)
	}
	// Older than the TTL: the six, bought before bought; younger: new-0,
	// bought 200 ms after it.
	testRequestTTL = time.Since(bought)
	if _, err := r.BuyRequest(ctx, "new-1", "ann", 1); err != nil {
		t.Fatal(err)
	}
	if n := r.client.HLen(ctx, r.requestsKey()).Val(); n != 3 {
		t.Fatalf("%d fields after the next buy, want new-0, new-1 and the cursor", n)
	}
	rc, err := r.BuyRequest(ctx, "old-0", "ann", 1)
	if err != nil || rc.Replayed || rc.Sale.Seq != 9 {
		t.Fatalf("a forgotten id: %+v, %v; want a new sale #9", rc, err)
	}
}
