package ticket

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  State
	}{
		{"seed file", `{"count": 5}`, State{left: 5, total: 5}},
		{"seed file with newline", "{\"count\": 5}\n", State{left: 5, total: 5}},
		{"zero", `{"count":0}`, State{left: 0, total: 0}},
		{"largest", `{"count": 9223372036854775807}`, State{left: math.MaxInt64, total: math.MaxInt64}},
		{"written by the store", `{"count": 4, "total": 5, "sold": 1, "version": 1}`, State{left: 4, total: 5, sold: 1, version: 1}},
		{"total only", `{"count": 4, "total": 5}`, State{left: 4, total: 5, sold: 1}},
		{"sold only", `{"count": 4, "sold": 1}`, State{left: 4, total: 5, sold: 1}},
		{"white space", " \t\n{ \"count\" : 2 }\n\n", State{left: 2, total: 2}},
		{"unknown members kept", `{"event": "concert", "count": 2, "meta": {"a": [1, 2]}}`, State{left: 2, total: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.input))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.input, err)
			}
			if !same(got, tt.want) {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.input, got, tt.want)
			}
		})
	}
}

// TestParseRefuses covers every input the issue lists, from testdata/bad,
// plus the two the tests must make: a huge file and one of every shape.
func TestParseRefuses(t *testing.T) {
	files, err := filepath.Glob("../testdata/bad/*.json")
	if err != nil || len(files) < 20 {
		t.Fatalf("want the bad inputs in ../testdata/bad, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			assertInvalid(t, data)
		})
	}
	t.Run("larger than MaxFileSize", func(t *testing.T) {
		assertInvalid(t, []byte(`{"count": 5, "pad": "`+strings.Repeat("x", MaxFileSize)+`"}`))
	})
}

func assertInvalid(t *testing.T, data []byte) {
	t.Helper()
	s, err := Parse(data)
	if err == nil {
		t.Fatalf("Parse(%.60q) = %+v, want an error", data, s)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Parse(%.60q): error %v does not wrap ErrInvalid", data, err)
	}
	if msg := err.Error(); strings.ContainsAny(msg, "\n\r") || msg == "" {
		t.Errorf("Parse(%.60q): error %q is not one line", data, msg)
	}
}

func TestParseNamesTheProblem(t *testing.T) {
	tests := []struct{ input, want string }{
		{``, "empty"},
		{`{"count": 5`, "truncated"},
		{`{"count": 5} x`, "after the JSON object"},
		{`null`, "not a JSON object but null"},
		{`[1]`, "an array"},
		{`{}`, `no "count"`},
		{`{"count": null}`, "null"},
		{`{"count": -3}`, "negative"},
		{`{"count": 5.5}`, "whole number"},
		{`{"count": 5.0}`, "whole number"},
		{`{"count": "5"}`, "a string"},
		{`{"count": 99999999999999999999}`, "beyond"},
		{`{"count": 1, "count": 2}`, "twice"},
		{`{"count": 5, "COUNT": 100}`, "differ only in case"},
		{`{"Count": 5}`, "case-sensitive"},
		{"\xef\xbb\xbf{\"count\": 5}", "byte order mark"},
		{`{"count": 3, "total": 5, "sold": 1}`, "not total 5 minus sold 1"},
		{`{"count": 6, "total": 5}`, "more than total"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := Parse([]byte(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) = %v, want an error containing %q", tt.input, err, tt.want)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	in := `{"event": "concert", "count": 5, "meta": {"b": [1, 2.50]}, "note": "\u00e9", "a\/b<x>": 1, "Time": "20:00"}`
	s, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	next, err := s.Take(2)
	if err != nil {
		t.Fatal(err)
	}
	out := string(next.Encode())
	want := `{"count": 3, "total": 5, "sold": 2, "version": 1, "event": "concert", "meta": {"b": [1, 2.50]}, "note": "\u00e9", "a\/b<x>": 1, "Time": "20:00"}` + "\n"
	if out != want {
		t.Errorf("Encode = %s, want %s", out, want)
	}
	again, err := Parse([]byte(out))
	if err != nil {
		t.Fatalf("Parse(Encode()): %v", err)
	}
	if string(again.Encode()) != out {
		t.Errorf("Encode is not stable: %s then %s", out, again.Encode())
	}
}

func TestTake(t *testing.T) {
	five, _ := New(5)
	tests := []struct {
		name    string
		from    State
		qty     int64
		want    State
		wantErr error
	}{
		{"one of five", five, 1, State{left: 4, total: 5, sold: 1, version: 1}, nil},
		{"all five", five, 5, State{left: 0, total: 5, sold: 5, version: 1}, nil},
		{"six of five", five, 6, five, ErrSoldOut},
		{"last one", State{left: 1, total: 5, sold: 4, version: 4}, 1, State{left: 0, total: 5, sold: 5, version: 5}, nil},
		{"none left", State{left: 0, total: 5, sold: 5, version: 5}, 1, State{left: 0, total: 5, sold: 5, version: 5}, ErrSoldOut},
		{"zero", five, 0, five, ErrQuantity},
		{"negative", five, -1, five, ErrQuantity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.from.Take(tt.qty)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Take(%d) error = %v, want %v", tt.qty, err, tt.wantErr)
			}
			if !same(got, tt.want) {
				t.Errorf("Take(%d) = %+v, want %+v", tt.qty, got, tt.want)
			}
		})
	}
}

func TestRecordRoundTrip(t *testing.T) {
	five, _ := New(5)
	next, _ := five.Take(2)
	s := Record{Seq: next.Version(), Buyer: `person"3" <é>`, Qty: 2, Left: next.Left(), PID: 42}
	line := s.AppendLine(nil)
	if line[len(line)-1] != '\n' || strings.Count(string(line), "\n") != 1 {
		t.Fatalf("AppendLine = %q, want one line", line)
	}
	got, err := ParseRecord(line[:len(line)-1])
	if err != nil {
		t.Fatalf("ParseRecord(%s): %v", line, err)
	}
	if got.Seq != s.Seq || got.Buyer != s.Buyer || got.Qty != s.Qty || got.Left != s.Left || got.PID != s.PID || !got.Time.Equal(s.Time) {
		t.Errorf("ParseRecord(AppendLine(s)) = %+v, want %+v", got, s)
	}
}

func TestParseRecordRefuses(t *testing.T) {
	good := `"buyer":"p","qty":1,"left":4,"pid":7,"time":"2026-11-25T20:00:00Z"`
	for _, in := range []string{
		``,
		`{"seq":1,` + good,
		`{"seq":0,` + good + `}`,
		`{"seq":1,"seq":1,` + good + `}`,
		`{"seq":1,"Seq":2,` + good + `}`,
		`{"seq":1,"extra":1,` + good + `}`,
		`{"seq":1,"buyer":"p","qty":0,"left":4,"pid":7,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":1,"buyer":"","qty":1,"left":4,"pid":7,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":1,"buyer":"a\nb","qty":1,"left":4,"pid":7,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":1,"buyer":"p","qty":1,"left":4,"pid":7,"time":"yesterday"}`,
		`{"seq":1,"buyer":"p","qty":1,"left":4,"pid":7}`,
	} {
		if s, err := ParseRecord([]byte(in)); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseRecord(%q) = %+v, %v; want an ErrInvalid", in, s, err)
		}
	}
}

func TestCheckBuyer(t *testing.T) {
	for _, ok := range []string{"person3", "Zoë", "pid 12", strings.Repeat("x", MaxBuyerLen)} {
		if err := CheckBuyer(ok); err != nil {
			t.Errorf("CheckBuyer(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "a\nb", "tab\there", "\x00", strings.Repeat("x", MaxBuyerLen+1), "bad\xff"} {
		if err := CheckBuyer(bad); err == nil {
			t.Errorf("CheckBuyer(%q) = nil, want an error", bad)
		}
	}
}

// same compares the numbers of two states, not their unknown members.
func same(a, b State) bool {
	return a.Left() == b.Left() && a.Total() == b.Total() && a.Sold() == b.Sold() && a.Version() == b.Version()
}
