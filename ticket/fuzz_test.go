package ticket

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzParse feeds the ticket-file parser arbitrary bytes: it must never
// panic, and every input is either refused with an error wrapping
// ErrInvalid or parsed into a valid state that encodes and parses back to
// the same state and the same bytes. The seed corpus is inline (f.Add) and
// in testdata/fuzz/FuzzParse, where go test looks for it.
//
//	go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 60s ./ticket
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"count": 5}`,
		`{"count": 0}`,
		"  {\"count\": 5}\n",
		`{"count": 4, "total": 5, "sold": 1, "version": 1}`,
		`{"count": 4, "total": 5}`,
		`{"count": 4, "sold": 1}`,
		`{"count": 3, "total": 5, "sold": 2, "version": 2, "event": "gala", "seats": [1, 2]}`,
		`{"count": 9223372036854775807}`,
		`{"count": 9223372036854775808}`,
		`{"count": 1, "sold": 9223372036854775807}`,
		`{"count": -1}`, `{"count": 5.0}`, `{"count": 5e0}`, `{"count": "5"}`, `{"count": null}`,
		`{"count": 5, "count": 6}`, `{"count": 5, "COUNT": 100}`, `{"Count": 5}`,
		`{"count": 5, "total": 4}`, `{"count": 5, "total": 9, "sold": 1}`,
		`{"count": 5}{"count": 6}`, `{"count": 5} x`, `{"count": 5`, `[5]`, `null`, `5`, `"5"`, ``, "\n",
		"\xef\xbb\xbf{\"count\": 5}", "{\"count\": 5, \"x\": \"\xff\"}", `{"\u0063ount": 5}`, `{"coUnt": 1}`,
		`{"ſ": 1, "count": 2}`, `{"K": 1, "count": 2, "k": 3}`,
		`{"count": 2, "total": 5, "sold": 1, "version": 3, "limit": 2, "held": 2, "holds": [{"id": "3-0a1b2c3d", "buyer": "a", "qty": 2, "expires": "2026-11-30T12:00:00Z"}]}`,
		`{"count": 2, "total": 5, "sold": 1, "version": 3, "held": 1, "holds": [{"id": "3-0a1b2c3d", "buyer": "a", "qty": 2, "expires": "2026-11-30T12:00:00Z"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrInvalid", data, err)
			}
			return
		}
		// A file the store wrote ("version") may have its count changed
		// by another process since (the lock protocol): only then may the
		// books not add up, and Reconcile records the difference.
		if s.Left() < 0 || s.Sold() < 0 || s.Total() < 0 || s.Version() < 0 || (!s.Stored() && !s.Consistent()) {
			t.Fatalf("Parse(%q) = %+v: not a valid state", data, s)
		}
		enc := s.Encode()
		s2, err := Parse(enc)
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, whose encoding %q is refused: %v", data, s, enc, err)
		}
		if s2.Left() != s.Left() || s2.Total() != s.Total() || s2.Sold() != s.Sold() || s2.Version() != s.Version() {
			t.Fatalf("round trip of %q: %+v, then %+v", data, s, s2)
		}
		if enc2 := s2.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %q, then %q", enc, enc2)
		}
		if next, err := s.Take(1); err == nil {
			if next.Left() != s.Left()-1 || next.Sold() != s.Sold()+1 || next.Total() != s.Total() || next.Version() != s.Version()+1 {
				t.Fatalf("%+v.Take(1) = %+v", s, next)
			}
		} else if !errors.Is(err, ErrSoldOut) || s.Left() != 0 {
			t.Fatalf("%+v.Take(1): %v", s, err)
		}
	})
}

// FuzzParseRecord does the same for a journal line: no panic; refused with
// ErrInvalid, or a valid sale whose line (AppendLine) parses back to it.
//
//	go test -run '^$' -fuzz '^FuzzParseRecord$' -fuzztime 60s ./ticket
func FuzzParseRecord(f *testing.F) {
	good := Record{Seq: 1, Buyer: "alice", Qty: 2, Left: 3, PID: 4242, Time: time.Date(2026, 11, 25, 20, 0, 0, 123456789, time.UTC)}
	line := good.AppendLine(nil)
	f.Add(line[:len(line)-1])
	f.Add(line[:len(line)/2])
	for _, s := range []string{
		`{"seq":2,"buyer":"b\u00e9b\u00e9 \"x\"","qty":1,"left":0,"pid":1,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":1,"buyer":"a","qty":1,"left":0,"pid":1,"time":"2026-11-25T21:00:00+01:00"}`,
		`{"seq":0,"buyer":"a","qty":1,"left":0,"pid":1,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":1,"buyer":"","qty":1,"left":0,"pid":1,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":1,"buyer":"a\nb","qty":1,"left":0,"pid":1,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":1,"buyer":"a","qty":0,"left":0,"pid":1,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":1,"buyer":"a","qty":1,"left":-1,"pid":1,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":1,"buyer":"a","qty":1,"left":0,"pid":1,"time":"yesterday"}`,
		`{"seq":1,"buyer":"a","qty":1,"left":0,"pid":1}`,
		`{"seq":1,"buyer":"a","qty":1,"left":0,"pid":1,"time":"2026-11-25T20:00:00Z","x":1}`,
		`{"seq":1,"seq":1,"buyer":"a","qty":1,"left":0,"pid":1,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":1,"buyer":"a","qty":1,"left":0,"pid":99999999999,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":1,"buyer":7,"qty":1,"left":0,"pid":1,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":3,"kind":"hold","hold":"3-0a1b2c3d","buyer":"a","qty":2,"left":3,"held":2,"total":5,"expires":"2026-11-25T20:10:00Z","pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":3,"kind":"hold","hold":"4-0a1b2c3d","buyer":"a","qty":2,"left":3,"held":2,"total":5,"expires":"2026-11-25T20:10:00Z","pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":4,"kind":"confirm","hold":"3-0a1b2c3d","buyer":"a","qty":2,"left":3,"total":5,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":4,"kind":"release","hold":"3-0a1b2c3d","buyer":"a","qty":2,"reason":"lapsed","left":5,"total":5,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":4,"kind":"release","hold":"3-0a1b2c3d","buyer":"a","qty":2,"reason":"bored","left":5,"total":5,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":5,"kind":"return","sale":4,"buyer":"a","qty":1,"left":4,"total":5,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":5,"kind":"return","sale":5,"buyer":"a","qty":1,"left":4,"total":5,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":6,"kind":"remove","qty":1,"left":3,"total":4,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":7,"kind":"add","qty":1,"left":4,"total":5,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":7,"kind":"add","qty":1,"left":4,"total":5,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":7,"kind":"restock","qty":1,"left":4,"total":5,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":0,"kind":"init","left":5,"total":5,"limit":2,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":8,"kind":"limit","left":5,"total":5,"limit":3,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":1,"buyer":"a","qty":1,"left":3,"held":1,"total":5,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":1,"buyer":"a","qty":1,"left":3,"held":3,"total":5,"pid":9,"time":"2026-11-25T20:00:00Z"}`,
		``, `{}`, `null`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseRecord(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseRecord(%q): error %v does not wrap ErrInvalid", data, err)
			}
			return
		}
		named := map[Kind]bool{KindSale: true, KindHold: true, KindConfirm: true, KindRelease: true, KindReturn: true}
		switch {
		case s.Kind != KindInit && (s.Seq < 1 || s.Qty < 1 && s.Kind != KindLimit),
			s.Left < 0 || s.Held < 0 || s.Total < 0,
			named[s.Kind] && CheckBuyer(s.Buyer) != nil,
			(s.Kind == KindHold || s.Kind == KindConfirm || s.Kind == KindRelease) && s.Hold == "",
			s.Kind == KindRelease && s.Reason != ReasonReleased && s.Reason != ReasonLapsed,
			s.Kind == KindReturn && (s.Sale < 1 || s.Sale >= s.Seq):
			t.Fatalf("ParseRecord(%q) = %+v: not a valid record", data, s)
		}
		if s.Hold != "" {
			if n, err := HoldSeq(s.Hold); err != nil || (s.Kind == KindHold) != (n == s.Seq) {
				t.Fatalf("ParseRecord(%q) = %+v: hold id %q does not fit", data, s, s.Hold)
			}
		}
		line := s.AppendLine(nil)
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("the line of %+v is not one line: %q", s, line)
		}
		s2, err := ParseRecord(line[:len(line)-1])
		if err != nil {
			t.Fatalf("ParseRecord(%q) = %+v, whose line %q is refused: %v", data, s, line, err)
		}
		if s2.Seq != s.Seq || s2.Kind != s.Kind || s2.Buyer != s.Buyer || s2.Qty != s.Qty || s2.Left != s.Left || s2.PID != s.PID || !s2.Time.Equal(s.Time) ||
			s2.Hold != s.Hold || s2.Sale != s.Sale || s2.Reason != s.Reason || s2.Held != s.Held || s2.Total != s.Total || s2.Limit != s.Limit || !s2.Expires.Equal(s.Expires) {
			t.Fatalf("round trip of %q: %+v, then %+v", data, s, s2)
		}
	})
}

// FuzzFlatObject: what parseObject's quick path (flatObject) accepts, the
// strict reading through encoding/json accepts too, with the same members,
// so that the quick path never lets through what the strict one refuses.
func FuzzFlatObject(f *testing.F) {
	for _, s := range []string{
		`{"count": 5, "total": 5, "sold": 0, "version": 0}` + "\n",
		`{"seq":1,"buyer":"alice","qty":1,"left":4,"total":5,"pid":12,"time":"2026-11-30T07:21:32.302589839Z"}`,
		`{"count":5}`, `{"count": 05}`, `{"count": -1}`, `{"count": 5, "count": 4}`, `{"Count": 5}`,
		`{"a":"x\"y"}`, `{"a":"é"}`, "{\"a\":\"\x01\"}", `{"a":1}x`, `{"a":1} `, `{}`, `{"a":1,}`, `{"a" :  1 ,"b":"2"}`,
		`{"count": 5}` + "\t\r\n", `{"count": 5.0}`, `{"count": 1e3}`, `{"a":"\u00e9"}`, "\xef\xbb\xbf{\"a\":1}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		quick, ok := flatObject(data)
		if !ok {
			return
		}
		strict, err := strictObject(data, stateNames)
		if err != nil {
			t.Fatalf("flatObject accepts %q, strictObject refuses it: %v", data, err)
		}
		if len(quick) != len(strict) {
			t.Fatalf("%q: %d members quick, %d strict", data, len(quick), len(strict))
		}
		for i := range quick {
			q, s := quick[i], strict[i]
			if q.key != s.key || !bytes.Equal(q.rawKey, s.rawKey) || !bytes.Equal(q.value, s.value) {
				t.Fatalf("%q: member %d is %q=%s (%s) quick, %q=%s (%s) strict", data, i, q.key, q.value, q.rawKey, s.key, s.value, s.rawKey)
			}
		}
	})
}
