package redis

import (
	"context"
	"errors"
	"strings"
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
	if err != nil || st.Held() != 2 || st.Left() != 8 || st.Limit() != 4 || len(st.Holds()) != 1 || st.Holds()[0] != (ticket.Hold{ID: h.Hold.Hold, Buyer: "ann", Qty: 2, Expires: h.Hold.Expires}) {
		t.Fatalf("read after hold: %v held %d holds %+v limit %d, %v", st, st.Held(), st.Holds(), st.Limit(), err)
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
