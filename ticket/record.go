package ticket

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
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

// Record is one record of the sales journal: a sale, or another change of
// the stock (see Kind). ParseRecord reads one from its journal line, and
// AppendLine writes it.
type Record struct {
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
func (s Record) Taken() int64 {
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
func (s Record) Describe() string {
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
// journal line stays one line. Its error wraps ErrBuyer.
func CheckBuyer(name string) error {
	if p := buyerProblem(name); p != "" {
		return fmt.Errorf("%s: %w", p, ErrBuyer)
	}
	return nil
}

// CheckRequest reports whether a buy of qty tickets by buyer may be made
// at all, whatever is left: ErrQuantity for a qty below 1, ErrBuyer for a
// name CheckBuyer refuses.
func CheckRequest(buyer string, qty int64) error {
	if qty < 1 {
		return ErrQuantity
	}
	return CheckBuyer(buyer)
}

// buyerProblem says what is wrong with a buyer name, "" if nothing.
func buyerProblem(name string) string {
	if name == "" {
		return "buyer name is empty"
	}
	if len(name) > MaxBuyerLen {
		return fmt.Sprintf("buyer name is longer than %d bytes", MaxBuyerLen)
	}
	for _, r := range name {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			return fmt.Sprintf("buyer name %q has a control character or invalid UTF-8", name)
		}
	}
	return ""
}

// AppendLine appends the journal line of s, ending in a newline, to b.
// A sale's line is {"seq", "buyer", "qty", "left", "total", "pid", "time"};
// the other kinds have "kind" after "seq" and no buyer or pid; an init
// record has no "qty" either. A sale's "total" is left out when it is 0
// (unknown).
func (s Record) AppendLine(b []byte) []byte {
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

// ParseRecord reads one journal line (without its newline) as strictly as
// Parse reads a ticket file: exactly the members its kind has (see
// AppendLine), each once; seq from 1 (from 0 for an init record), qty from
// 1, left and total from 0 with left at most total, a valid buyer and an
// RFC 3339 time. Its errors wrap ErrInvalid.
func ParseRecord(line []byte) (Record, error) {
	members, err := parseObject(line, recordNames)
	if err != nil {
		return Record{}, err
	}
	return recordOf(members)
}

// ParseFields reads a record from its members given as text, the way a
// Redis stream entry holds them: numbers in decimal digits, strings
// ("kind", "buyer", "time") as they are. It applies the rules of
// ParseRecord to them, and its errors wrap ErrInvalid.
func ParseFields(fields map[string]string) (Record, error) {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names) // the same input, the same error
	members := make([]member, 0, len(names))
	for _, name := range names {
		v := []byte(fields[name])
		switch name {
		case "kind", "buyer", "time":
			v, _ = json.Marshal(fields[name]) // a string always marshals
		}
		members = append(members, member{key: name, value: v})
	}
	return recordOf(members)
}

// recordOf makes a record of a line's members and checks it.
func recordOf(members []member) (Record, error) {
	var s Record
	seen := map[string]bool{}
	for _, m := range members {
		var n int64
		var err error
		switch m.key {
		case "seq", "qty", "left", "pid", "total":
			if n, err = wholeNumber(m.key, m.value); err != nil {
				return Record{}, err
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
				return Record{}, invalidf("pid %d is out of range", n)
			}
			s.PID = int(n)
		case "kind":
			var k string
			if err := unquote(m.value, &k); err != nil {
				return Record{}, invalidf("kind is not a string")
			}
			if _, ok := recordMembers[Kind(k)]; !ok || k == "" {
				return Record{}, invalidf("kind %q is not a kind of record (outside, restock, init)", k)
			}
			s.Kind = Kind(k)
		case "buyer":
			if err := unquote(m.value, &s.Buyer); err != nil {
				return Record{}, invalidf("buyer is not a string")
			}
			if p := buyerProblem(s.Buyer); p != "" {
				return Record{}, invalidf("%s", p)
			}
		case "time":
			var text string
			if err := unquote(m.value, &text); err != nil {
				return Record{}, invalidf("time is not a string")
			}
			if s.Time, err = time.Parse(time.RFC3339Nano, text); err != nil {
				return Record{}, invalidf("time %q is not RFC 3339", text)
			}
		default:
			return Record{}, invalidf("unknown member %q", m.key)
		}
		seen[m.key] = true
	}
	want := recordMembers[s.Kind]
	for _, name := range want {
		if !seen[name] {
			return Record{}, invalidf("a %s record needs %s, not %q", s.Kind, listNames(want), name)
		}
	}
	extra := len(seen) - len(want)
	if s.Kind == KindSale && seen["total"] {
		extra--
	}
	if extra != 0 {
		return Record{}, invalidf("a %s record has only %s (and total)", s.Kind, listNames(want))
	}
	switch {
	case s.Kind != KindInit && s.Seq < 1:
		return Record{}, invalidf("seq must be at least 1")
	case s.Kind != KindInit && s.Qty < 1:
		return Record{}, invalidf("qty must be at least 1")
	case seen["total"] && s.Left > s.Total:
		return Record{}, invalidf("left %d is more than total %d", s.Left, s.Total)
	}
	return s, nil
}

// unquote reads a JSON string value into dst: at once when it has no
// escapes (every value parseObject returns is valid JSON, so a string has
// no raw quote or control character inside), through encoding/json
// otherwise.
func unquote(v []byte, dst *string) error {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' && bytes.IndexByte(v[1:len(v)-1], '\\') < 0 {
		*dst = string(v[1 : len(v)-1])
		return nil
	}
	return json.Unmarshal(v, dst)
}

func listNames(names []string) string {
	b, _ := json.Marshal(names)
	return string(b)
}
