package holds

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ticketd/ticket/store/internal/derived"
	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/ticket"
)

// fakeJournal is a journal in memory that counts what the index reads.
type fakeJournal struct {
	records []ticket.Record // records[i].Seq == i+1
	read    int             // records returned by From and All
	alls    int
}

func (j *fakeJournal) From(seq int64) ([]ticket.Record, error) {
	var out []ticket.Record
	for _, r := range j.records {
		if r.Seq >= seq {
			out = append(out, r)
		}
	}
	j.read += len(out)
	return out, nil
}

func (j *fakeJournal) All() iter.Seq2[ticket.Record, error] {
	j.alls++
	return func(yield func(ticket.Record, error) bool) {
		for _, r := range j.records {
			j.read++
			if !yield(r, nil) {
				return
			}
		}
	}
}

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func (j *fakeJournal) next(r ticket.Record) ticket.Record {
	r.Seq = int64(len(j.records)) + 1
	r.Time = t0
	if r.Kind == ticket.KindHold {
		r.Hold = ticket.NewHoldID(r.Seq)
	}
	j.records = append(j.records, r)
	return r
}

func (j *fakeJournal) version() int64 { return int64(len(j.records)) }

func (j *fakeJournal) last() *ticket.Record { return &j.records[len(j.records)-1] }

// open returns the holds the records leave open, soonest first.
func (j *fakeJournal) open() []ticket.Hold {
	var l ticket.Ledger
	for _, r := range j.records {
		l.Add(r)
	}
	return l.OpenHolds()
}

func (j *fakeJournal) held() int64 {
	var n int64
	for _, h := range j.open() {
		n += h.Qty
	}
	return n
}

func syncIndex(t *testing.T, path string, j *fakeJournal) *Index {
	t.Helper()
	x, err := Sync(path, files.Like{UID: -1}, j.version(), j.last(), j, j.held(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func mustOpen(t *testing.T, x *Index, j *fakeJournal) {
	t.Helper()
	got, err := x.Open()
	if err != nil {
		t.Fatal(err)
	}
	want := j.open()
	if !slices.EqualFunc(got, want, func(a, b ticket.Hold) bool {
		return a.ID == b.ID && a.Buyer == b.Buyer && a.Qty == b.Qty && a.Expires.Equal(b.Expires)
	}) {
		t.Fatalf("index has %d open holds, the journal %d:\n%v\n%v", len(got), len(want), got, want)
	}
}

// newJournal starts a journal with an init record.
func newJournal() *fakeJournal {
	j := &fakeJournal{}
	j.records = append(j.records, ticket.Record{Seq: 1, Kind: ticket.KindInit, Left: 1 << 40, Total: 1 << 40, Time: t0})
	return j
}

// TestQueueOrder: thousands of holds of mixed durations, confirmed,
// released or left to lapse in any order: the index agrees with the
// journal at every step, and Expired returns exactly the open holds due,
// soonest first, and reads no more than a few entries per hold expired.
func TestQueueOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.json.holds")
	j := newJournal()
	x := syncIndex(t, path, j)
	rnd := rand.New(rand.NewPCG(1, 2))
	var openIDs []ticket.Hold
	now := t0
	for step := range 3000 {
		var rs []ticket.Record
		// Expiry first, as a transaction does.
		if step%50 == 0 {
			now = now.Add(30 * time.Second)
			expired, err := x.Expired(now)
			if err != nil {
				t.Fatal(err)
			}
			var want []ticket.Hold
			for _, h := range j.open() {
				if !h.Expires.After(now) {
					want = append(want, h)
				}
			}
			if len(expired) != len(want) {
				t.Fatalf("step %d: %d expired, want %d", step, len(expired), len(want))
			}
			for i := range expired {
				if i > 0 && expired[i].Expires.Before(expired[i-1].Expires) {
					t.Fatalf("step %d: expired out of order: %v", step, expired)
				}
			}
			got := slices.SortedFunc(slices.Values(expired), func(a, b ticket.Hold) int { return strings.Compare(a.ID, b.ID) })
			want = slices.SortedFunc(slices.Values(want), func(a, b ticket.Hold) int { return strings.Compare(a.ID, b.ID) })
			for i := range want {
				if got[i].ID != want[i].ID {
					t.Fatalf("step %d: expired %s, want %s", step, got[i].ID, want[i].ID)
				}
				rs = append(rs, j.next(ticket.Record{Kind: ticket.KindRelease, Hold: want[i].ID, Buyer: want[i].Buyer, Qty: want[i].Qty, Reason: ticket.ReasonLapsed}))
				openIDs = slices.DeleteFunc(openIDs, func(h ticket.Hold) bool { return h.ID == want[i].ID })
			}
		}
		switch k := rnd.IntN(10); {
		case k < 6 || len(openIDs) == 0:
			r := j.next(ticket.Record{Kind: ticket.KindHold, Buyer: fmt.Sprint("b", step%97), Qty: 1 + rnd.Int64N(3), Expires: now.Add(time.Duration(1+rnd.IntN(600)) * time.Second)})
			openIDs = append(openIDs, ticket.Hold{ID: r.Hold, Buyer: r.Buyer, Qty: r.Qty})
			rs = append(rs, r)
		default:
			i := rnd.IntN(len(openIDs))
			h := openIDs[i]
			openIDs = slices.Delete(openIDs, i, i+1)
			kind := ticket.KindConfirm
			if k == 9 {
				kind = ticket.KindRelease
			}
			if found, ok, err := x.Find(h.ID); err != nil || !ok || found.Qty != h.Qty {
				t.Fatalf("step %d: open hold %s not found: %v %v", step, h.ID, ok, err)
			}
			rs = append(rs, j.next(ticket.Record{Kind: kind, Hold: h.ID, Buyer: h.Buyer, Qty: h.Qty}))
		}
		if err := x.Apply(rs); err != nil {
			t.Fatal(err)
		}
		if step%500 == 0 {
			mustOpen(t, x, j)
		}
	}
	mustOpen(t, x, j)
	x.Close()
	// Reopened at its anchor: nothing of the journal is read.
	j.read = 0
	x = syncIndex(t, path, j)
	if j.read != 0 || x.Rebuilds != 0 {
		t.Fatalf("an index at the sale's version read %d records, %d rebuilds", j.read, x.Rebuilds)
	}
	mustOpen(t, x, j)
}

// TestRebuilt: whatever happened to the file, the journal rebuilds it:
// missing, cut short, a slot garbled, dirty (a process killed while Apply
// wrote), another boot, another journal; and a sale with nothing held
// starts again empty without reading the journal at all.
func TestRebuilt(t *testing.T) {
	for _, c := range []struct {
		name    string
		damage  func(t *testing.T, path string, j *fakeJournal)
		rebuilt bool
	}{
		{"missing", func(t *testing.T, path string, _ *fakeJournal) { os.Remove(path) }, true},
		{"cut short", func(t *testing.T, path string, _ *fakeJournal) { os.Truncate(path, headerSize+100) }, true},
		{"dirty", func(t *testing.T, path string, j *fakeJournal) {
			x, _ := Sync(path, files.Like{UID: -1}, j.version(), j.last(), j, j.held(), false)
			defer x.Close()
			if err := x.markDirty(); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"slot garbled", func(t *testing.T, path string, _ *fakeJournal) {
			b, _ := os.ReadFile(path)
			for i := headerSize; i < len(b); i += slotSize {
				if b[i] != 0 {
					b[i+sQty] ^= 1
				}
			}
			os.WriteFile(path, b, 0o644)
		}, true},
		{"another boot", func(t *testing.T, _ string, _ *fakeJournal) {
			old := derived.BootSum
			derived.BootSum = func() uint64 { return 7 }
			t.Cleanup(func() { derived.BootSum = old })
		}, true},
		{"another journal", func(t *testing.T, _ string, j *fakeJournal) {
			for i := range j.records {
				j.records[i].PID = 99
			}
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.json.holds")
			j := newJournal()
			x := syncIndex(t, path, j)
			var rs []ticket.Record
			for i := range 40 {
				rs = append(rs, j.next(ticket.Record{Kind: ticket.KindHold, Buyer: "b", Qty: 1, Expires: t0.Add(time.Duration(i) * time.Minute)}))
			}
			rs = append(rs, j.next(ticket.Record{Kind: ticket.KindConfirm, Hold: rs[3].Hold, Buyer: "b", Qty: 1}))
			if err := x.Apply(rs); err != nil {
				t.Fatal(err)
			}
			x.Close()
			c.damage(t, path, j)
			x = syncIndex(t, path, j)
			mustOpen(t, x, j) // a slot that does not check is found here
			if got := x.Rebuilds == 1; got != c.rebuilt {
				t.Fatalf("%d rebuilds", x.Rebuilds)
			}
			if _, ok, _ := x.Find(rs[3].Hold); ok {
				t.Fatal("a confirmed hold is open")
			}
			if h, ok, _ := x.Find(rs[4].Hold); !ok || h.Buyer != "b" {
				t.Fatalf("hold %s not found", rs[4].Hold)
			}
		})
	}
	t.Run("nothing held", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "t.json.holds")
		j := newJournal()
		x := syncIndex(t, path, j)
		r := j.next(ticket.Record{Kind: ticket.KindHold, Buyer: "b", Qty: 1, Expires: t0})
		if err := x.Apply([]ticket.Record{r}); err != nil {
			t.Fatal(err)
		}
		x.Close()
		// Confirmed, then a thousand sales the index never saw.
		j.next(ticket.Record{Kind: ticket.KindConfirm, Hold: r.Hold, Buyer: "b", Qty: 1})
		for range 1000 {
			j.next(ticket.Record{Kind: ticket.KindSale, Buyer: "s", Qty: 1})
		}
		j.read, j.alls = 0, 0
		x = syncIndex(t, path, j)
		if j.read != 0 {
			t.Fatalf("a sale with nothing held read %d records to start its index again", j.read)
		}
		mustOpen(t, x, j)
	})
}

// TestDiscarded: what a transaction staged and did not apply (it was not
// committed) is forgotten; a grow in the middle of one leaves the file
// dirty until Apply, so that a transaction that then fails is rebuilt.
func TestDiscarded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.json.holds")
	j := newJournal()
	x := syncIndex(t, path, j)
	// Staged, never applied: gone after Close.
	r := ticket.Record{Seq: 2, Kind: ticket.KindHold, Hold: ticket.NewHoldID(2), Buyer: "b", Qty: 1, Expires: t0}
	if err := x.Stage(r); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := x.Find(r.Hold); !ok {
		t.Fatal("a staged hold is not found in its transaction")
	}
	x.Close()
	x = syncIndex(t, path, j)
	if _, ok, _ := x.Find(r.Hold); ok {
		t.Fatal("a hold staged by a transaction that was not committed is open")
	}
	// Enough staged to grow the file, never applied: rebuilt next time.
	for i := range 100 {
		seq := int64(2 + i)
		if err := x.Stage(ticket.Record{Seq: seq, Kind: ticket.KindHold, Hold: ticket.NewHoldID(seq), Buyer: "b", Qty: 1, Expires: t0}); err != nil {
			t.Fatal(err)
		}
	}
	x.Close()
	x = syncIndex(t, path, j)
	mustOpen(t, x, j)
	if _, ok, _ := x.Find(ticket.NewHoldID(50)); ok {
		t.Fatal("a hold staged by a transaction that grew the file and was not committed is open")
	}
}
