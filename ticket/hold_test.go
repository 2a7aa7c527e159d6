package ticket

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// next applies r to s through Next, failing the test on an error.
func next(t *testing.T, s State, r Record) (State, Record) {
	t.Helper()
	n, rec, err := s.Next(r)
	if err != nil {
		t.Fatalf("%v.Next(%+v): %v", s, r, err)
	}
	if !n.Consistent() {
		t.Fatalf("%+v after %+v is not consistent", n, rec)
	}
	return n, rec
}

// TestPlainSaleFileUnchanged: a sale that holds nothing and has no limit
// writes exactly the members it wrote before holds existed.
func TestPlainSaleFileUnchanged(t *testing.T) {
	s, _ := New(5)
	s, _ = next(t, s, Record{Kind: KindSale, Buyer: "a", Qty: 2})
	if got, want := string(s.Encode()), "{\"count\": 3, \"total\": 5, \"sold\": 2, \"version\": 1}\n"; got != want {
		t.Fatalf("Encode = %q, want %q", got, want)
	}
}

// TestBookingFlow walks a sale through every kind of record, checks the
// file's round trip at each step, and replays the records with Apply and
// a Ledger, which must agree with the state.
func TestBookingFlow(t *testing.T) {
	s, _ := New(5)
	s, _ = s.WithLimit(3, 0)
	var records []Record
	step := func(r Record) Record {
		t.Helper()
		var rec Record
		s, rec = next(t, s, r)
		records = append(records, rec)
		back, err := Parse(s.Encode())
		if err != nil {
			t.Fatalf("the file after %s does not parse: %v\n%s", rec.Describe(), err, s.Encode())
		}
		if !bytes.Equal(back.Encode(), s.Encode()) || !sameBooking(back, s) {
			t.Fatalf("round trip after %s:\n%s\n%s", rec.Describe(), s.Encode(), back.Encode())
		}
		line := rec.AppendLine(nil)
		if r2, err := ParseRecord(line[:len(line)-1]); err != nil || r2.Hold != rec.Hold || r2.Held != rec.Held || r2.Sale != rec.Sale {
			t.Fatalf("record %q parses as %+v, %v", line, r2, err)
		}
		return rec
	}
	holding := func(name string) int64 {
		var n int64
		for _, r := range records {
			if b, d := r.Holding(); b == name {
				n += d
			}
		}
		return n
	}
	h1 := step(Record{Kind: KindHold, Buyer: "alice", Qty: 2, Expires: t0.Add(time.Minute), PID: 1, Time: t0})
	if s.Left() != 3 || s.Held() != 2 || holding("alice") != 2 {
		t.Fatalf("after a hold of 2: %v, alice has %d", s, holding("alice"))
	}
	if err := s.Allowed("alice", holding("alice"), 2); !errors.Is(err, ErrLimit) {
		t.Fatalf("alice's 2 more past a limit of 3: %v", err)
	}
	if err := s.Allowed("bob", holding("bob"), 3); err != nil {
		t.Fatalf("bob's 3: %v", err)
	}
	h2 := step(Record{Kind: KindHold, Buyer: "bob", Qty: 1, Expires: t0.Add(time.Second), PID: 1, Time: t0})
	c := step(Record{Kind: KindConfirm, Hold: h1.Hold, Buyer: "alice", Qty: 2, PID: 1, Time: t0})
	if c.Buyer != "alice" || c.Qty != 2 || s.Sold() != 2 || s.Held() != 1 {
		t.Fatalf("confirm: %+v, %v", c, s)
	}
	if _, _, err := s.Next(Record{Kind: KindConfirm, Hold: h1.Hold, Buyer: "alice", Qty: 2}); !errors.Is(err, ErrUnknownHold) {
		t.Fatalf("a confirm of more than is held: %v", err)
	}
	// bob's hold lapses.
	var lapsed []Record
	s, lapsed = s.Lapse([]Hold{{ID: h2.Hold, Buyer: "bob", Qty: 1, Expires: t0.Add(time.Second)}}, t0.Add(time.Second))
	if len(lapsed) != 1 || lapsed[0].Hold != h2.Hold || lapsed[0].Reason != ReasonLapsed || s.Held() != 0 || s.Left() != 3 {
		t.Fatalf("expiry: %+v, %v", lapsed, s)
	}
	records = append(records, lapsed...)
	step(Record{Kind: KindReturn, Sale: c.Seq, Buyer: "alice", Qty: 1, PID: 1, Time: t0})
	if holding("alice") != 1 || s.Sold() != 1 || s.Left() != 4 {
		t.Fatalf("after a return: %v, alice %d", s, holding("alice"))
	}
	step(Record{Kind: KindAdd, Qty: 2, PID: 1, Time: t0})
	step(Record{Kind: KindRemove, Qty: 6, PID: 1, Time: t0})
	if s.Left() != 0 || s.Total() != 1 {
		t.Fatalf("after +2 -6: %v", s)
	}
	if _, _, err := s.Next(Record{Kind: KindRemove, Qty: 1}); !errors.Is(err, ErrSoldOut) {
		t.Fatalf("removing below zero left: %v", err)
	}
	if got := string(s.Encode()); strings.Contains(got, "held") || strings.Contains(got, "holds") {
		t.Fatalf("no hold is open, yet the file has them: %s", got)
	}

	// Replay.
	start, _ := New(5)
	start, _ = start.WithLimit(3, 0)
	r := start
	var l Ledger
	l.Add(Record{Kind: KindInit, Left: 5, Total: 5, Limit: 3, Time: t0})
	for _, rec := range records {
		var err error
		if r, err = r.Apply(rec); err != nil {
			t.Fatalf("Apply(%+v): %v", rec, err)
		}
		l.Add(rec)
	}
	if !same(r, s) || !sameBooking(r, s) {
		t.Fatalf("replayed %v, made %v", r, s)
	}
	l.Check(s, "last", "state")
	if p := l.Problems(); len(p) > 0 {
		t.Fatalf("ledger: %q", p)
	}
	if b, err := l.Books(); err != nil || !same(b, s) || !sameBooking(b, s) {
		t.Fatalf("ledger books %v (%v), want %v", b, err, s)
	}
}

// TestLedgerFindsBookingProblems: a confirm of no hold, a return of more
// than the sale has, a buyer above the limit.
func TestLedgerFindsBookingProblems(t *testing.T) {
	for _, c := range []struct {
		name string
		recs []Record
		want string
	}{
		{"confirm of no hold", []Record{{Seq: 1, Kind: KindConfirm, Hold: "1-00000000", Buyer: "a", Qty: 1, Left: 5}}, "not open"},
		{"return beyond the sale", []Record{
			{Seq: 1, Buyer: "a", Qty: 1, Left: 4, Total: 5},
			{Seq: 2, Kind: KindReturn, Sale: 1, Buyer: "a", Qty: 2, Left: 6, Total: 5},
		}, "which has 1"},
		{"return of no sale", []Record{{Seq: 1, Kind: KindReturn, Sale: 1, Buyer: "a", Qty: 1, Left: 5, Total: 5}}, "not a sale"},
		{"over the limit", []Record{
			{Seq: 1, Buyer: "a", Qty: 2, Left: 3, Total: 5},
			{Seq: 2, Buyer: "a", Qty: 1, Left: 2, Total: 5},
		}, "more than the limit of 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l Ledger
			l.Add(Record{Kind: KindInit, Left: 5, Total: 5, Limit: 2})
			for _, r := range c.recs {
				l.Add(r)
			}
			if !strings.Contains(strings.Join(l.Problems(), "\n"), c.want) {
				t.Fatalf("problems %q, want one with %q", l.Problems(), c.want)
			}
		})
	}
}

// TestParseRefusesBooking: booking members that do not describe open holds.
func TestParseRefusesBooking(t *testing.T) {
	for _, in := range []string{
		`{"count": 3, "held": 2}`,
		`{"count": 3, "total": 5, "sold": 2, "version": 1, "limit": -1}`,
		`{"count": 3, "total": 5, "sold": 2, "version": 1, "Held": 0}`,
	} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%s): %v, want ErrInvalid", in, err)
		}
	}
}

func TestHoldSeq(t *testing.T) {
	if n, err := HoldSeq(NewHoldID(42)); err != nil || n != 42 {
		t.Fatalf("HoldSeq(NewHoldID(42)) = %d, %v", n, err)
	}
	for _, bad := range []string{"", "42", "42-", "042-00000000", "0-00000000", "-1-00000000", "42-0000000", "42-0000000G", "42-00000000x", "x-00000000"} {
		if _, err := HoldSeq(bad); !errors.Is(err, ErrUnknownHold) {
			t.Errorf("HoldSeq(%q): %v", bad, err)
		}
	}
}

// TestStockKinds: "restock" keeps the one meaning it had before booking,
// stock found added outside ticket, and its line stays what ticket writes
// for it (no pid; a line with one is refused); stock the seller adds
// through ticket is "add", which names its process. A journal with both
// balances, each counted where it belongs.
func TestStockKinds(t *testing.T) {
	// A restock line as ticket writes it today: byte for byte the same
	// after a round trip.
	old := `{"seq":3,"kind":"restock","qty":3,"left":5,"total":8,"time":"2026-11-25T20:35:19.5Z"}`
	r, err := ParseRecord([]byte(old))
	if err != nil || r.Kind != KindRestock || r.Describe() != "3 added outside ticket" {
		t.Fatalf("ParseRecord(%s) = %+v (%q), %v", old, r, r.Describe(), err)
	}
	if got := string(r.AppendLine(nil)); got != old+"\n" {
		t.Fatalf("AppendLine = %q, want %q", got, old+"\n")
	}
	for _, bad := range []string{
		`{"seq":3,"kind":"restock","qty":3,"left":5,"total":8,"pid":9,"time":"2026-11-25T20:35:19.5Z"}`,
		`{"seq":3,"kind":"add","qty":3,"left":5,"total":8,"time":"2026-11-25T20:35:19.5Z"}`,
	} {
		if r, err := ParseRecord([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseRecord(%s) = %+v, %v; want ErrInvalid", bad, r, err)
		}
	}
	// What a settlement records for a count found higher is a restock.
	five, _ := New(5)
	five, _ = next(t, five, Record{Kind: KindSale, Buyer: "a", Qty: 2})
	found, _ := At(five.Version(), 6, 6)
	_, rec, ok := Reconcile(five, found, t0)
	if !ok || rec.Kind != KindRestock || rec.Qty != 3 || rec.PID != 0 {
		t.Fatalf("Reconcile of a count raised by 3: %+v, %v", rec, ok)
	}
	// The seller's add and remove, beside it.
	s := five
	var l Ledger
	l.Add(Record{Kind: KindInit, Left: 5, Total: 5})
	for _, r := range []Record{
		{Kind: KindSale, Buyer: "a", Qty: 2, PID: 1},
		{Kind: KindAdd, Qty: 4, PID: 1},
		{Kind: KindRemove, Qty: 1, PID: 1},
	} {
		var rec Record
		if r.Kind == KindSale {
			rec = Record{Seq: 1, Buyer: "a", Qty: 2, Left: 3, Total: 5, PID: 1}
		} else {
			s, rec = next(t, s, r)
		}
		line := rec.AppendLine(nil)
		back, err := ParseRecord(line[:len(line)-1])
		if err != nil || back.Kind != r.Kind {
			t.Fatalf("the line %q parses as %+v, %v", line, back, err)
		}
		l.Add(back)
	}
	s, rec = next(t, s, Record{Kind: KindRestock, Qty: 3})
	l.Add(rec)
	if got := rec.Describe(); got != "3 added outside ticket" {
		t.Fatalf("a restock describes itself as %q", got)
	}
	l.Check(s, "the last record", "the state")
	if p := l.Problems(); len(p) != 0 {
		t.Fatalf("problems: %q", p)
	}
	if l.Counts().Added != 3 || l.Bookings().Restocked != 4 || l.Bookings().Removed != 1 || s.Total() != 11 || s.Left() != 9 {
		t.Fatalf("counts %+v, bookings %+v, state %v", l.Counts(), l.Bookings(), s)
	}
}

func TestBooked(t *testing.T) {
	st, err := Booked(3, 5, 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	if st.Left() != 5 || st.Held() != 3 || st.Sold() != 2 || st.Total() != 10 || st.Version() != 3 || !st.Consistent() {
		t.Fatalf("Booked: %v held %d", st, st.Held())
	}
	for _, bad := range [][3]int64{{5, 6, 10}, {8, 3, 10}, {5, -1, 10}, {11, 0, 10}} {
		if _, err := Booked(3, bad[0], bad[1], bad[2]); !errors.Is(err, ErrInvalid) {
			t.Errorf("Booked(3, %v) = %v, want ErrInvalid", bad, err)
		}
	}
}
