package store

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/ticket"
)

// TestPadStart: padStart keeps what bytes.TrimRight(b, " ") keeps.
func TestPadStart(t *testing.T) {
	for _, s := range []string{"", " ", "        ", "x", "x ", "x        ", "{\"seq\":1}\n" + strings.Repeat(" ", 16384), "ab       c", strings.Repeat(" ", 17) + "\n" + strings.Repeat(" ", 9)} {
		if got, want := padStart([]byte(s)), len(bytes.TrimRight([]byte(s), " ")); got != want {
			t.Errorf("padStart(%q) = %d, want %d", s, got, want)
		}
	}
}

// TestJournalTailNotStale: the journal serves its last records from what
// its opening read (journal.ReadAt), so a write must drop that copy: a
// record appended after the opening must be read back from the file, not
// as the padding the copy holds there (keepDisplaced reads the books
// through the same open journal after a commit). (A cut needs no drop:
// reads stop at the content's end, before what was cut.)
func TestJournalTailNotStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.json.journal")
	now := time.Now().UTC()
	record := func(seq int64) ticket.Record {
		return ticket.Record{Seq: seq, Buyer: "b", Qty: 1, Left: 10 - seq, Total: 10, PID: 1, Time: now}
	}
	var lines []byte
	for seq := int64(1); seq <= 2; seq++ {
		lines = record(seq).AppendLine(lines)
	}
	if err := os.WriteFile(path, lines, 0o644); err != nil {
		t.Fatal(err)
	}
	j, err := openJournal(path, files.Like{UID: -1}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if got, err := j.Sales(1, 3); err != nil || len(got) != 2 {
		t.Fatalf("at the opening: %d sales (%v), want 2", len(got), err)
	}
	// The first append grows the journal with padding; the second writes
	// over padding the opening did not see; reopen to read that padding.
	if err := j.append(record(3).AppendLine(nil), 2); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if j, err = openJournal(path, files.Like{UID: -1}, true); err != nil {
		t.Fatal(err)
	}
	before := j.content
	if err := j.append(record(4).AppendLine(nil), 3); err != nil {
		t.Fatal(err)
	}
	got, err := j.Sales(1, 4)
	if err != nil || len(got) != 4 {
		t.Fatalf("after appending sale #4: %d sales (%v), want 4", len(got), err)
	}
	if _, err := j.undo(before); err != nil {
		t.Fatal(err)
	}
	if got, err := j.Sales(1, 4); err != nil || len(got) != 3 || got[4].Seq != 0 {
		t.Fatalf("after cutting sale #4: %d sales (%v), want 3", len(got), err)
	}
}
