package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// records returns the journal's records of kind kind.
func records(t *testing.T, s *store.Store, kind ticket.Kind) []ticket.Record {
	t.Helper()
	var rs []ticket.Record
	for r, err := range s.Sales() {
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind == kind {
			rs = append(rs, r)
		}
	}
	return rs
}

// fileState parses the ticket file as it is on disk, as a peer reads it.
func fileState(t *testing.T, path string) (ticket.State, []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ticket.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return st, data
}

// TestSettleRecordsLapses: a lapsed hold is only counted by readers (the
// ticket file and the journal still show it held) until Settle records its
// release; a second Settle, with nothing left to settle, writes nothing.
func TestSettleRecordsLapses(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.json")
	s := store.Open(path, store.Options{})
	if _, _, err := s.Init(ctx, 3, store.Create); err != nil {
		t.Fatal(err)
	}
	h, err := s.Hold(ctx, "ann", 2, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the state, not for a time: until a reader counts it lapsed.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st, err := s.Read()
		if err != nil {
			t.Fatal(err)
		}
		if st.Held() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hold %s for 50ms still counted held after 30s: %v", h.Hold.Hold, st)
		}
	}
	// Reading recorded nothing: without Settle the lapse is not written.
	if onDisk, _ := fileState(t, path); onDisk.Held() != 2 {
		t.Fatalf("before Settle the ticket file shows %d held, want the 2 a reader only counts back", onDisk.Held())
	}
	if rs := records(t, s, ticket.KindRelease); len(rs) != 0 {
		t.Fatalf("before Settle the journal holds releases %v", rs)
	}

	st, err := s.Settle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Held() != 0 || st.Left() != 3 || st.Total() != 3 {
		t.Errorf("Settle returned %v, want 3 left of 3, none held", st)
	}
	rs := records(t, s, ticket.KindRelease)
	if len(rs) != 1 || rs[0].Hold != h.Hold.Hold || rs[0].Reason != ticket.ReasonLapsed || rs[0].Qty != 2 {
		t.Fatalf("journal releases %+v, want one lapse of hold %s, 2 tickets", rs, h.Hold.Hold)
	}
	onDisk, file := fileState(t, path)
	if onDisk.Held() != 0 || onDisk.Left() != 3 || onDisk.Version() != rs[0].Seq {
		t.Errorf("after Settle the ticket file is %v at version %d, want 3 left, none held, at the release's version %d", onDisk, onDisk.Version(), rs[0].Seq)
	}
	journal, err := os.ReadFile(s.JournalPath())
	if err != nil {
		t.Fatal(err)
	}

	// Nothing left to settle: nothing written.
	if _, err := s.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	if _, again := fileState(t, path); !bytes.Equal(again, file) {
		t.Errorf("a Settle with nothing to settle rewrote the ticket file: %q, was %q", again, file)
	}
	if again, _ := os.ReadFile(s.JournalPath()); !bytes.Equal(again, journal) {
		t.Errorf("a Settle with nothing to settle wrote to the journal:\n%s\nwas\n%s", again, journal)
	}
	if _, err := s.Confirm(ctx, h.Hold.Hold); !errors.Is(err, ticket.ErrHoldLapsed) {
		t.Errorf("confirm of the settled hold: %v, want ErrHoldLapsed", err)
	}
	if rep, err := s.Verify(ctx); err != nil || !rep.Balanced() || rep.Booked.Lapsed != 2 {
		t.Errorf("verify: %v, problems %q, lapsed %d; want balanced, 2 lapsed", err, rep.Problems, rep.Booked.Lapsed)
	}
}

// TestSettleRecordsOutsideChange: Settle records what any writer settles,
// here a count lowered by a cooperating process, as a change made outside
// ticket.
func TestSettleRecordsOutsideChange(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.json")
	s := store.Open(path, store.Options{})
	if _, _, err := s.Init(ctx, 5, store.Create); err != nil {
		t.Fatal(err)
	}
	_, data := fileState(t, path)
	lowered := strings.Replace(string(data), `"count": 5`, `"count": 3`, 1)
	if lowered == string(data) {
		t.Fatalf("no count of 5 in %q", data)
	}
	putBack(t, path, []byte(lowered))
	if rs := records(t, s, ticket.KindOutside); len(rs) != 0 {
		t.Fatalf("before Settle: outside records %v", rs)
	}
	st, err := s.Settle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rs := records(t, s, ticket.KindOutside); len(rs) != 1 || rs[0].Qty != 2 || st.Left() != 3 {
		t.Errorf("after Settle: outside records %+v, state %v; want one of 2 tickets, 3 left", rs, st)
	}
}
