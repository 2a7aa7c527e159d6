package redis

import (
	"fmt"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketd/ticket/ticket"
)

// FuzzRedisRecords: every record of ticket's own a journal line can hold
// (each kind but outside and restock) comes back the same from its stream
// entry (entryFields, as Restore writes it, read as Sales reads it) and,
// for a confirm or release, from the closed hash's line (recordLine, read
// by parseRecordLine); any line of tabs given to parseRecordLine is read
// or refused, never a panic.
func FuzzRedisRecords(f *testing.F) {
	for _, s := range []string{
		`{"seq":1,"buyer":"a","qty":1,"left":3,"held":1,"total":5,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":3,"kind":"hold","hold":"3-0a1b2c3d","buyer":"a b","qty":2,"left":3,"held":2,"total":5,"expires":"2026-11-25T20:10:00.5Z","pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":4,"kind":"confirm","hold":"3-0a1b2c3d","buyer":"a","qty":2,"left":3,"total":5,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":4,"kind":"release","hold":"3-0a1b2c3d","buyer":"a","qty":2,"reason":"lapsed","left":5,"held":1,"total":6,"time":"2026-11-25T20:00:00.123Z"}`,
		`{"seq":5,"kind":"return","sale":4,"buyer":"\u00e9","qty":1,"left":4,"total":5,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":6,"kind":"remove","qty":1,"left":3,"total":4,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":7,"kind":"add","qty":1,"left":4,"total":5,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":0,"kind":"init","left":5,"total":5,"limit":2,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":8,"kind":"limit","left":5,"total":5,"limit":3,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		"1\tconfirm\t1-00000000\t\ta\t1\t\t0\t0\t1\t\t\t1\t2026-11-25T20:00:00Z",
		"2\trelease\t1-00000000\t\ta\t1\tlapsed\t1\t0\t1\t\t\t\tx",
		"\t\t\t\t\t\t\t\t\t\t\t\t\t",
	} {
		f.Add(s)
	}
	r := &Store{name: "fuzz", addr: "fuzz"}
	f.Fuzz(func(t *testing.T, s string) {
		if f := strings.Split(s, "\t"); len(f) == len(recordNames) {
			_, _ = parseRecordLine(f) // read or refused
		}
		rec, err := ticket.ParseRecord([]byte(s))
		if err != nil || rec.Kind == ticket.KindOutside || rec.Kind == ticket.KindRestock {
			return
		}
		if rec.Kind == ticket.KindSale {
			rec.Total = 0 // a Redis sale's entry has none
		}
		want := rec
		want.Time, want.Expires = want.Time.UTC(), want.Expires.UTC()
		values := map[string]any{}
		fields := entryFields(rec)
		for i := 0; i < len(fields); i += 2 {
			values[fields[i].(string)] = fields[i+1]
		}
		got, err := r.saleFromEntry(goredis.XMessage{ID: "1-0", Values: values})
		if err != nil || !sameRecord(got, want) {
			t.Fatalf("entry of %s: %+v, %v; want %+v", s, got, err, want)
		}
		if rec.Kind == ticket.KindConfirm || rec.Kind == ticket.KindRelease {
			got, err := parseRecordLine(strings.Split(recordLine(rec), "\t"))
			if err != nil || !sameRecord(got, want) {
				t.Fatalf("closed line of %s: %+v, %v; want %+v", s, got, err, want)
			}
		}
	})
}

func sameRecord(a, b ticket.Record) bool {
	return a.Time.Equal(b.Time) && a.Expires.Equal(b.Expires) &&
		fmt.Sprint(a.Seq, a.Kind, a.Hold, a.Sale, a.Buyer, a.Qty, a.Reason, a.Left, a.Held, a.Total, a.Limit, a.PID) ==
			fmt.Sprint(b.Seq, b.Kind, b.Hold, b.Sale, b.Buyer, b.Qty, b.Reason, b.Left, b.Held, b.Total, b.Limit, b.PID)
}
