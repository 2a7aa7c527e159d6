package holders

import (
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ticketd/ticket/store/internal/derived"
	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/ticket"
)

// fakeJournal is a journal in memory that counts what the index reads.
type fakeJournal struct {
	records []ticket.Record // records[i].Seq == i+1
	froms   int             // calls of From
	read    int             // records From and All returned
	alls    int             // calls of All
}

func (j *fakeJournal) From(seq int64) ([]ticket.Record, error) {
	j.froms++
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

// add appends a record of kind for buyer and returns it.
func (j *fakeJournal) add(kind ticket.Kind, buyer string, qty int64) ticket.Record {
	r := ticket.Record{Seq: int64(len(j.records)) + 1, Kind: kind, Buyer: buyer, Qty: qty, Time: t0}
	if kind == ticket.KindHold || kind == ticket.KindRelease {
		r.Hold = ticket.NewHoldID(r.Seq)
	}
	j.records = append(j.records, r)
	return r
}

func (j *fakeJournal) version() int64 { return int64(len(j.records)) }

func (j *fakeJournal) last() *ticket.Record {
	if len(j.records) == 0 {
		return nil
	}
	return &j.records[len(j.records)-1]
}

// want counts each buyer's holding from the records, as the rule says.
func (j *fakeJournal) want() map[string]int64 {
	m := map[string]int64{}
	for _, r := range j.records {
		if b, d := r.Holding(); d != 0 {
			m[b] += d
		}
	}
	return m
}

func sync(t *testing.T, path string, j *fakeJournal) *Index {
	t.Helper()
	x, err := Sync(path, files.Like{UID: -1}, j.version(), j.last(), j, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func check(t *testing.T, x *Index, j *fakeJournal) {
	t.Helper()
	for name, n := range j.want() {
		got, err := x.Holding(name)
		if err != nil || got != n {
			t.Fatalf("%s holds %d (%v), want %d", name, got, err, n)
		}
	}
	if n, err := x.Buyers(); err != nil || n != countPositive(j.want()) {
		t.Fatalf("%d buyers (%v), want %d", n, err, countPositive(j.want()))
	}
}

func countPositive(m map[string]int64) int {
	n := 0
	for _, v := range m {
		if v > 0 {
			n++
		}
	}
	return n
}

// TestIndexCostDoesNotGrow: after thousands of records and buyers, a
// transaction that finds the index anchored at the sale's version reads
// nothing of the journal, and one that is a few records behind reads only
// those. The table grew as buyers came, and says what the journal says.
func TestIndexCostDoesNotGrow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.json.holders")
	j := &fakeJournal{}
	j.add(ticket.KindInit, "", 0)
	x := sync(t, path, j)
	for i := range 5000 {
		before := j.version()
		var rs []ticket.Record
		rs = append(rs, j.add(ticket.KindSale, fmt.Sprintf("buyer%d", i%1500), 1))
		if i%7 == 0 {
			rs = append(rs, j.add(ticket.KindReturn, fmt.Sprintf("buyer%d", i%1500), 1))
		}
		if x.h.applied != before {
			t.Fatalf("applied %d, want %d", x.h.applied, before)
		}
		if err := x.Apply(rs); err != nil {
			t.Fatal(err)
		}
	}
	x.Close()
	j.froms, j.alls, j.read = 0, 0, 0
	x = sync(t, path, j)
	if j.froms+j.alls != 0 || x.Rebuilds != 0 {
		t.Fatalf("an index at the sale's version read the journal: %d From, %d All", j.froms, j.alls)
	}
	check(t, x, j)
	if x.h.slots < 2*1500 {
		t.Fatalf("%d slots for 1500 buyers", x.h.slots)
	}
	x.Close()

	// Three records behind (a writer killed after its rename): the three
	// are read back, nothing more.
	for range 3 {
		j.add(ticket.KindHold, "late", 1)
	}
	j.read = 0
	x = sync(t, path, j)
	if j.alls != 0 || j.read > 4 || x.Rebuilds != 0 {
		t.Fatalf("rolling forward 3 records read %d records (%d All)", j.read, j.alls)
	}
	check(t, x, j)
}

// TestIndexKilledHalfWay: records applied to their slots but not to the
// header (a process killed in between) are applied again by the next Sync,
// and change nothing the second time.
func TestIndexKilledHalfWay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.json.holders")
	j := &fakeJournal{}
	j.add(ticket.KindInit, "", 0)
	x := sync(t, path, j)
	rs := []ticket.Record{j.add(ticket.KindSale, "a", 2), j.add(ticket.KindHold, "b", 1), j.add(ticket.KindReturn, "a", 1)}
	// What Apply does, but for the header.
	for _, r := range rs {
		b, d := r.Holding()
		if err := x.add(keyOf(b), d, r.Seq); err != nil {
			t.Fatal(err)
		}
	}
	x.Close()
	x = sync(t, path, j)
	if x.Rebuilds != 0 {
		t.Fatal("rebuilt instead of rolled forward")
	}
	check(t, x, j)
}

// TestIndexRebuilt: whatever is wrong with the file, the journal rebuilds
// it: missing, cut short, a slot written over, a header from another
// journal (a sale replaced), a ticket file gone back.
func TestIndexRebuilt(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, path string, j *fakeJournal)
	}{
		{"missing", func(t *testing.T, path string, _ *fakeJournal) { os.Remove(path) }},
		{"cut short", func(t *testing.T, path string, _ *fakeJournal) { os.Truncate(path, headerSize+10) }},
		{"empty", func(t *testing.T, path string, _ *fakeJournal) { os.Truncate(path, 0) }},
		{"slot garbled", func(t *testing.T, path string, _ *fakeJournal) {
			b, _ := os.ReadFile(path)
			for i := headerSize; i < len(b); i += slotSize {
				if b[i] != 0 {
					b[i+sHolding] ^= 0x40
				}
			}
			os.WriteFile(path, b, 0o644)
		}},
		{"journal replaced", func(t *testing.T, _ string, j *fakeJournal) {
			// The same number of records, another history.
			for i := range j.records {
				j.records[i].Buyer = "other"
			}
		}},
		{"ticket file gone back", func(t *testing.T, _ string, j *fakeJournal) {
			j.records = j.records[:len(j.records)-2]
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.json.holders")
			j := &fakeJournal{}
			j.add(ticket.KindInit, "", 0)
			x := sync(t, path, j)
			for i := range 20 {
				if err := x.Apply([]ticket.Record{j.add(ticket.KindSale, fmt.Sprintf("b%d", i%5), 1)}); err != nil {
					t.Fatal(err)
				}
			}
			x.Close()
			c.damage(t, path, j)
			x = sync(t, path, j)
			for name, n := range j.want() {
				if got, err := x.Holding(name); err != nil || got != n {
					t.Fatalf("%s holds %d (%v), want %d", name, got, err, n)
				}
			}
			if x.Rebuilds != 1 {
				t.Fatalf("%d rebuilds, want 1", x.Rebuilds)
			}
			check(t, x, j)
		})
	}
}

// TestIndexAnotherBoot: in another boot, slots written after the last
// checkpoint may or may not have reached the disk; the index is rolled
// forward from the checkpoint, which the slots' sequence numbers make
// exact whichever of them did.
func TestIndexAnotherBoot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.json.holders")
	j := &fakeJournal{}
	j.add(ticket.KindInit, "", 0)
	x := sync(t, path, j)
	for i := range 3 * checkpointEvery / 2 {
		if err := x.Apply([]ticket.Record{j.add(ticket.KindSale, fmt.Sprintf("b%d", i%50), 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if x.h.synced <= checkpointEvery || x.h.synced >= x.h.applied || x.h.applied != j.version() {
		t.Fatalf("synced %d, applied %d", x.h.synced, x.h.applied)
	}
	// A power cut lost the header's last writes but kept some slots: the
	// header says applied at the checkpoint.
	h := x.h
	h.applied, h.anchor = h.synced, h.syncedAnchor
	if _, err := x.f.WriteAt(encodeHeader(h), 0); err != nil {
		t.Fatal(err)
	}
	x.Close()
	old := derived.BootSum
	derived.BootSum = func() uint64 { return 12345 }
	defer func() { derived.BootSum = old }()
	j.froms, j.alls = 0, 0
	x = sync(t, path, j)
	if x.Rebuilds != 0 || j.froms != 1 {
		t.Fatalf("%d rebuilds, %d From: want a roll forward", x.Rebuilds, j.froms)
	}
	check(t, x, j)
}

// TestIndexStage: what a transaction decided counts in its next look-up,
// and is forgotten when it is not committed.
func TestIndexStage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.json.holders")
	j := &fakeJournal{}
	j.add(ticket.KindInit, "", 0)
	x := sync(t, path, j)
	x.Stage(ticket.Record{Kind: ticket.KindSale, Buyer: "a", Qty: 2})
	if n, _ := x.Holding("a"); n != 2 {
		t.Fatalf("staged sale: a holds %d", n)
	}
	if m, _ := x.Most(); m != 2 {
		t.Fatalf("Most %d", m)
	}
	x.Unstage()
	if n, _ := x.Holding("a"); n != 0 {
		t.Fatalf("unstaged: a holds %d", n)
	}
}
