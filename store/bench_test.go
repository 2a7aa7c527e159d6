package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/ticket"
)

// BenchmarkBuyAfterHistory shows that a buy costs the same after 100,000
// sales as after 1,000: recovery reads only the journal's tail.
func BenchmarkBuyAfterHistory(b *testing.B) {
	for _, sold := range []int64{1_000, 100_000} {
		for _, noSync := range []bool{true, false} {
			b.Run(fmt.Sprintf("sold=%d/nosync=%v", sold, noSync), func(b *testing.B) {
				path := withHistory(b, sold, sold+1<<40) // never sold out
				s := Open(path, Options{NoSync: noSync})
				ctx := context.Background()
				for b.Loop() {
					if _, err := s.Buy(ctx, "bench", 1); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkJournalAppend is one journal line written and fsynced.
func BenchmarkJournalAppend(b *testing.B) {
	for _, noSync := range []bool{true, false} {
		b.Run(fmt.Sprintf("nosync=%v", noSync), func(b *testing.B) {
			j, err := openJournal(filepath.Join(b.TempDir(), "t.json.journal"), files.Like{UID: -1}, noSync)
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			s := ticket.Record{Seq: 1, Buyer: "bench", Qty: 1, Left: 1, PID: 1, Time: time.Now()}
			line := s.AppendLine(nil)
			for b.Loop() {
				if err := j.append(line, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// withHistory writes a sale of total tickets of which sold are already in
// the journal, as the store would have left it.
func withHistory(b *testing.B, sold, total int64) string {
	b.Helper()
	dir := b.TempDir()
	path := filepath.Join(dir, "t.json")
	var journal []byte
	t := time.Now()
	for i := int64(1); i <= sold; i++ {
		journal = ticket.Record{Seq: i, Buyer: "history", Qty: 1, Left: total - i, PID: 1, Time: t}.AppendLine(journal)
	}
	state := fmt.Sprintf(`{"count": %d, "total": %d, "sold": %d, "version": %d}`, total-sold, total, sold, sold)
	if err := os.WriteFile(path+".journal", journal, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(state), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkBuyUnderLimit is a buy in a sale with a per-buyer limit after
// many buyers have bought (each buyer's holding looked up in PATH.holders)
// and beside many open holds (which the ticket file lists): what each
// costs beside a plain buy.
func BenchmarkBuyUnderLimit(b *testing.B) {
	ctx := context.Background()
	for _, c := range []struct{ buyers, holds int }{{0, 0}, {10_000, 0}, {0, 1_000}, {0, 10_000}} {
		b.Run(fmt.Sprintf("buyers=%d/holds=%d", c.buyers, c.holds), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "t.json")
			s := Open(path, Options{NoSync: true, NoGroup: true})
			if _, _, err := s.InitLimit(ctx, 1<<40, 1<<30, Create); err != nil {
				b.Fatal(err)
			}
			for i := range c.buyers {
				if _, err := s.Buy(ctx, fmt.Sprint("buyer", i), 1); err != nil {
					b.Fatal(err)
				}
			}
			for i := range c.holds {
				if _, err := s.Hold(ctx, fmt.Sprint("holder", i), 1, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			for b.Loop() {
				i++
				if _, err := s.Buy(ctx, fmt.Sprint("bench", i%100), 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
