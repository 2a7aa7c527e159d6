package ticket

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode"
)

// MaxBuyerLen is the longest buyer name, in bytes.
const MaxBuyerLen = 200

// Kind is what a journal record records. Every record but an init record
// changes the stock and takes the next sequence number.
type Kind string

// The kinds of journal records.
const (
	// KindSale is a buy made through ticket: Qty tickets to Buyer. Its line
	// has no "kind" member, as every sale's line had before there were
	// other kinds.
	KindSale Kind = ""
	// KindOutside is Qty tickets taken by another process: "count" was
	// found lower than the books say, changed under the lock by a buyer
	// that follows the lock protocol without writing to the journal.
	KindOutside Kind = "outside"
	// KindRestock is Qty tickets added: "count" was found higher than the
	// books say (stock added by hand, under the lock). Total grows by Qty.
	KindRestock Kind = "restock"
	// KindInit starts the books: the sale has Total tickets, Left of them
	// not yet sold, at version Seq. It is the first record of a journal
	// written by this version of ticket (a journal written before has none
	// and starts with sale #1).
	KindInit Kind = "init"
)

// String names the kind for people: "sale", "outside", "restock", "init".
func (k Kind) String() string {
	if k == KindSale {
		return "sale"
	}
	return string(k)
}

// Sale is one record of the sales journal: a sale, or another change of
// the stock (see Kind). The name is older than the other kinds.
type Sale struct {
	Seq   int64     `json:"seq"`             // 1 for the first sale, then one more per record; an init record's is the version it starts at
	Kind  Kind      `json:"kind,omitempty"`  // what the record records; "" for a sale
	Buyer string    `json:"buyer,omitempty"` // a sale: who bought, as given to the buy
	Qty   int64     `json:"qty,omitempty"`   // tickets taken (a sale, outside) or added (restock); at least 1
	Left  int64     `json:"left"`            // tickets left after this record
	Total int64     `json:"total,omitempty"` // the sale's size after this record; 0 in lines written before it was recorded
	PID   int       `json:"pid,omitempty"`   // a sale: the process that made it
	Time  time.Time `json:"time"`            // when the record was committed, UTC
}

// Taken returns the tickets the record took out of the stock: its Qty for
// a sale or a change made outside ticket, minus its Qty for a restock, 0
// for an init record.
func (s Sale) Taken() int64 {
	switch s.Kind {
	case KindSale, KindOutside:
		return s.Qty
	case KindRestock:
		return -s.Qty
	}
	return 0
}

// Describe says what the record did, for people: "alice bought 2",
// "2 taken outside ticket", "3 added", "started with 5 of 5".
func (s Sale) Describe() string {
	switch s.Kind {
	case KindOutside:
		return fmt.Sprintf("%d taken outside ticket", s.Qty)
	case KindRestock:
		return fmt.Sprintf("%d added outside ticket", s.Qty)
	case KindInit:
		return fmt.Sprintf("started with %d left of %d", s.Left, s.Total)
	}
	return fmt.Sprintf("%s bought %d", s.Buyer, s.Qty)
}

// CheckBuyer reports whether name may be used as a buyer: 1 to MaxBuyerLen
// bytes of UTF-8 text without control characters, so that every report and
// journal line stays one line.
func CheckBuyer(name string) error {
	if name == "" {
		return invalidf("buyer name is empty")
	}
	if len(name) > MaxBuyerLen {
		return invalidf("buyer name is longer than %d bytes", MaxBuyerLen)
	}
	for _, r := range name {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			return invalidf("buyer name %q has a control character or invalid UTF-8", name)
		}
	}
	return nil
}

// AppendLine appends the journal line of s, ending in a newline, to b.
// A sale's line is {"seq", "buyer", "qty", "left", "total", "pid", "time"};
// the other kinds have "kind" after "seq" and no buyer or pid; an init
// record has no "qty" either. A sale's "total" is left out when it is 0
// (unknown).
func (s Sale) AppendLine(b []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, s.Seq, 10)
	if s.Kind != KindSale {
		b = append(b, `,"kind":"`...)
		b = append(b, s.Kind...)
		b = append(b, '"')
	} else {
		b = append(b, `,"buyer":`...)
		name, _ := json.Marshal(s.Buyer) // a string always marshals
		b = append(b, name...)
	}
	if s.Kind != KindInit {
		b = append(b, `,"qty":`...)
		b = strconv.AppendInt(b, s.Qty, 10)
	}
	b = append(b, `,"left":`...)
	b = strconv.AppendInt(b, s.Left, 10)
	if s.Total != 0 || s.Kind != KindSale {
		b = append(b, `,"total":`...)
		b = strconv.AppendInt(b, s.Total, 10)
	}
	if s.Kind == KindSale {
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, int64(s.PID), 10)
	}
	b = append(b, `,"time":"`...)
	b = s.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, "\"}\n"...)
}

// recordMembers lists, for each kind, the members its line must have;
// "total" may be missing only from a sale (lines written before it was
// recorded).
var recordMembers = map[Kind][]string{
	KindSale:    {"seq", "buyer", "qty", "left", "pid", "time"},
	KindOutside: {"seq", "kind", "qty", "left", "total", "time"},
	KindRestock: {"seq", "kind", "qty", "left", "total", "time"},
	KindInit:    {"seq", "kind", "left", "total", "time"},
}

// ParseSale reads one journal line (without its newline) as strictly as
// Parse reads a ticket file: exactly the members its kind has (see
// AppendLine), each once; seq from 1 (from 0 for an init record), qty from
// 1, left and total from 0 with left at most total, a valid buyer and an
// RFC 3339 time.
func ParseSale(line []byte) (Sale, error) {
	members, err := parseObject(line, saleNames)
	if err != nil {
		return Sale{}, err
	}
	var s Sale
	seen := map[string]bool{}
	for _, m := range members {
		var n int64
		switch m.key {
		case "seq", "qty", "left", "pid", "total":
			if n, err = wholeNumber(m.key, m.value); err != nil {
				return Sale{}, err
			}
		}
		switch m.key {
		case "seq":
			s.Seq = n
		case "qty":
			s.Qty = n
		case "left":
			s.Left = n
		case "total":
			s.Total = n
		case "pid":
			if n > 1<<31 {
				return Sale{}, invalidf("pid %d is out of range", n)
			}
			s.PID = int(n)
		case "kind":
			var k string
			if err := json.Unmarshal(m.value, &k); err != nil {
				return Sale{}, invalidf("kind is not a string")
			}
			if _, ok := recordMembers[Kind(k)]; !ok || k == "" {
				return Sale{}, invalidf("kind %q is not a kind of record (outside, restock, init)", k)
			}
			s.Kind = Kind(k)
		case "buyer":
			if err := json.Unmarshal(m.value, &s.Buyer); err != nil {
				return Sale{}, invalidf("buyer is not a string")
			}
			if err := CheckBuyer(s.Buyer); err != nil {
				return Sale{}, err
			}
		case "time":
			var text string
			if err := json.Unmarshal(m.value, &text); err != nil {
				return Sale{}, invalidf("time is not a string")
			}
			if s.Time, err = time.Parse(time.RFC3339Nano, text); err != nil {
				return Sale{}, invalidf("time %q is not RFC 3339", text)
			}
		default:
			return Sale{}, invalidf("unknown member %q", m.key)
		}
		seen[m.key] = true
	}
	want := recordMembers[s.Kind]
	for _, name := range want {
		if !seen[name] {
			return Sale{}, invalidf("a %s record needs %s, not %q", s.Kind, listNames(want), name)
		}
	}
	extra := len(seen) - len(want)
	if s.Kind == KindSale && seen["total"] {
		extra--
	}
	if extra != 0 {
		return Sale{}, invalidf("a %s record has only %s (and total)", s.Kind, listNames(want))
	}
	switch {
	case s.Kind != KindInit && s.Seq < 1:
		return Sale{}, invalidf("seq must be at least 1")
	case s.Kind != KindInit && s.Qty < 1:
		return Sale{}, invalidf("qty must be at least 1")
	case seen["total"] && s.Left > s.Total:
		return Sale{}, invalidf("left %d is more than total %d", s.Left, s.Total)
	}
	return s, nil
}

func listNames(names []string) string {
	b, _ := json.Marshal(names)
	return string(b)
}

// Books returns the state the record leaves the sale in: its left and
// total, sold the difference, at version Seq. It needs the record's total,
// and reports false for a sale written before totals were recorded.
func (s Sale) Books() (State, bool) {
	if s.Kind == KindSale && s.Total == 0 {
		return State{}, false // a sale takes at least 1: 0 is "not recorded"
	}
	return At(s.Seq, s.Left, s.Total), true
}

// Apply returns the state after record r, which must follow s: its
// sequence number is the next, its tickets are there to take (or its
// restock fits in int64), and its left and total are what they make. The
// result keeps s's unknown members. An init record does not follow
// anything: Apply refuses it.
func (s State) Apply(r Sale) (State, error) {
	next := s
	next.stored = true
	switch r.Kind {
	case KindSale, KindOutside:
		var err error
		if next, err = s.Take(r.Qty); err != nil {
			return s, fmt.Errorf("record #%d takes %d of %d left: %w", r.Seq, r.Qty, s.Left, err)
		}
	case KindRestock:
		if r.Qty > math.MaxInt64-s.Total {
			return s, invalidf("restock #%d of %d makes the total beyond int64", r.Seq, r.Qty)
		}
		next.Left += r.Qty
		next.Total += r.Qty
		next.Version++
	default:
		return s, invalidf("%s record #%d in the middle of the journal", r.Kind, r.Seq)
	}
	switch {
	case r.Seq != next.Version:
		return s, invalidf("record #%d follows version %d", r.Seq, s.Version)
	case r.Left != next.Left:
		return s, invalidf("record #%d says %d left, but %d left minus its %d is %d", r.Seq, r.Left, s.Left, r.Taken(), next.Left)
	case r.Total != 0 && r.Total != next.Total:
		return s, invalidf("record #%d says total %d, but it follows total %d", r.Seq, r.Total, s.Total)
	}
	return next, nil
}

// Reconcile brings the books, the state the journal says the sale is in,
// into line with the ticket file's "count" (file.Left), which is always the
// tickets left: any process following the lock protocol may change it. A
// count lower than the books' is a sale made outside ticket, a higher one
// stock added by hand; either is returned as a record at the next version
// (ok true), and the state after it. A count that matches returns the
// books as they are (ok false). The state keeps the ticket file's unknown
// members either way.
func Reconcile(books, file State, now time.Time) (State, Sale, bool) {
	books.extra = file.extra
	books.stored = true
	d := books.Left - file.Left
	if d == 0 || books.Version == math.MaxInt64 {
		return books, Sale{}, false
	}
	r := Sale{Seq: books.Version + 1, Kind: KindOutside, Qty: d, Time: now.UTC()}
	if d < 0 {
		r.Kind, r.Qty = KindRestock, -d
	}
	next, err := books.Apply(withResult(books, r))
	if err != nil {
		return books, Sale{}, false // beyond int64: left for Verify to report
	}
	r.Left, r.Total = next.Left, next.Total
	return next, r, true
}

// withResult fills in the left and total r leaves books with, so that
// Apply checks only the arithmetic.
func withResult(books State, r Sale) Sale {
	r.Left = books.Left - r.Taken()
	r.Total = books.Total
	if r.Kind == KindRestock {
		r.Total += r.Qty
	}
	return r
}
