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
	// KindRestock is Qty tickets added outside ticket: "count" was found
	// higher than the books say (stock added by hand, under the lock).
	// Total grows by Qty. Only a settlement records it, and its line has no
	// "pid": stock the seller adds through ticket is KindAdd.
	KindRestock Kind = "restock"
	// KindInit starts the books: the sale has Total tickets, Left of them
	// not yet sold, at version Seq. It is the first record of a journal
	// written by this version of ticket (a journal written before has none
	// and starts with sale #1).
	KindInit Kind = "init"
	// KindHold is Qty tickets taken out of the stock into held for Buyer,
	// until Expires; Hold is its id (see NewHoldID).
	KindHold Kind = "hold"
	// KindConfirm turns hold Hold (Buyer's Qty tickets) into a sale.
	KindConfirm Kind = "confirm"
	// KindRelease gives hold Hold's Qty tickets back to the stock, Reason
	// saying why: ReasonReleased (asked for) or ReasonLapsed (expired).
	KindRelease Kind = "release"
	// KindReturn gives back Qty tickets of sale number Sale (a sale or a
	// confirm), which Buyer made.
	KindReturn Kind = "return"
	// KindAdd is Qty tickets the seller added through ticket (Store.Restock):
	// left and total grow by Qty. Unlike KindRestock, which ticket finds
	// after the fact, it names the process that made it.
	KindAdd Kind = "add"
	// KindRemove is Qty tickets the seller took out of the stock through
	// ticket: left and total fall by Qty.
	KindRemove Kind = "remove"
	// KindLimit changes the per-buyer limit of a sale that has one to
	// Limit; it moves no ticket.
	KindLimit Kind = "limit"
)

// The reasons of a release.
const (
	ReasonReleased = "released" // the holder gave it back
	ReasonLapsed   = "lapsed"   // it expired
)

// String names the kind for people: "sale", "outside", "restock", "init",
// "hold", "confirm", "release", "return", "add", "remove", "limit".
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
	Seq     int64     `json:"seq"`              // 1 for the first sale, then one more per record; an init record's is the version it starts at
	Kind    Kind      `json:"kind,omitempty"`   // what the record records; "" for a sale
	Hold    string    `json:"hold,omitempty"`   // hold, confirm, release: the hold's id
	Sale    int64     `json:"sale,omitempty"`   // return: the number of the sale returned from
	Buyer   string    `json:"buyer,omitempty"`  // a sale, hold, confirm, release, return: whose tickets
	Qty     int64     `json:"qty,omitempty"`    // tickets the record moves; at least 1
	Reason  string    `json:"reason,omitempty"` // release: ReasonReleased or ReasonLapsed
	Left    int64     `json:"left"`             // tickets left after this record
	Held    int64     `json:"held,omitempty"`   // tickets in open holds after this record
	Total   int64     `json:"total,omitempty"`  // the sale's size after this record; 0 in lines written before it was recorded
	Limit   int64     `json:"limit,omitempty"`  // init: the per-buyer limit, 0 for none
	Expires time.Time `json:"expires,omitzero"` // hold: when it lapses
	PID     int       `json:"pid,omitempty"`    // the process that made it (a sale, hold, confirm, return, add, remove, limit)
	Time    time.Time `json:"time"`             // when the record was committed, UTC
}

// Taken returns the tickets the record took out of "count": its Qty for a
// sale, a change made outside ticket, a hold or a removal, minus its Qty
// for a restock, an add, a release or a return, 0 for an init, confirm or
// limit record.
func (s Record) Taken() int64 {
	switch s.Kind {
	case KindSale, KindOutside, KindHold, KindRemove:
		return s.Qty
	case KindRestock, KindAdd, KindRelease, KindReturn:
		return -s.Qty
	}
	return 0
}

// Stocked returns what the record changed the sale's total by: its Qty for
// stock added (outside ticket, or through it), minus its Qty for stock
// removed, 0 for every other kind.
func (s Record) Stocked() int64 {
	switch s.Kind {
	case KindRestock, KindAdd:
		return s.Qty
	case KindRemove:
		return -s.Qty
	}
	return 0
}

// Holding returns the buyer whose tickets under a per-buyer limit the
// record changes, and by how much: a sale or a hold adds its Qty, a
// release or a return takes it away, and a confirm changes nothing (the
// held tickets stay the buyer's, now bought). Every other kind changes no
// buyer's holding ("", 0). Both backends keep each buyer's holding by this
// rule alone, so that the limit is one look-up, never a scan.
func (s Record) Holding() (buyer string, delta int64) {
	switch s.Kind {
	case KindSale, KindHold:
		return s.Buyer, s.Qty
	case KindRelease, KindReturn:
		return s.Buyer, -s.Qty
	}
	return "", 0
}

// Describe says what the record did, for people: "alice bought 2",
// "2 taken outside ticket", "3 added", "started with 5 of 5".
func (s Record) Describe() string {
	switch s.Kind {
	case KindOutside:
		return fmt.Sprintf("%d taken outside ticket", s.Qty)
	case KindRestock:
		return fmt.Sprintf("%d added outside ticket", s.Qty)
	case KindAdd:
		return fmt.Sprintf("%d added", s.Qty)
	case KindRemove:
		return fmt.Sprintf("%d removed", s.Qty)
	case KindLimit:
		return fmt.Sprintf("at most %d a buyer", s.Limit)
	case KindInit:
		if s.Limit != 0 {
			return fmt.Sprintf("started with %d left of %d, at most %d a buyer", s.Left, s.Total, s.Limit)
		}
		return fmt.Sprintf("started with %d left of %d", s.Left, s.Total)
	case KindHold:
		return fmt.Sprintf("%s held %d until %s (hold %s)", s.Buyer, s.Qty, s.Expires.UTC().Format(time.RFC3339), s.Hold)
	case KindConfirm:
		return fmt.Sprintf("%s confirmed %d (hold %s)", s.Buyer, s.Qty, s.Hold)
	case KindRelease:
		return fmt.Sprintf("%s's hold %s of %d %s", s.Buyer, s.Hold, s.Qty, s.Reason)
	case KindReturn:
		return fmt.Sprintf("%s returned %d of sale #%d", s.Buyer, s.Qty, s.Sale)
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
// Its members come in this order, each where its kind has it (see
// recordMembers): "seq", "kind" (not for a sale), "hold", "sale",
// "buyer", "qty", "reason", "left", "held" (when not 0), "total", "limit"
// (init, when not 0), "expires", "pid", "time". A sale's line is
// {"seq", "buyer", "qty", "left", "total", "pid", "time"}, its "total"
// left out when it is 0 (unknown); a restock's "pid" only when ticket made
// it.
func (s Record) AppendLine(b []byte) []byte {
	has := recordMembers[s.Kind]
	in := func(name string) bool { return slices.Contains(has, name) }
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, s.Seq, 10)
	if s.Kind != KindSale {
		b = append(b, `,"kind":"`...)
		b = append(b, s.Kind...)
		b = append(b, '"')
	}
	str := func(name, v string) {
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":`...)
		q, _ := json.Marshal(v) // a string always marshals
		b = append(b, q...)
	}
	num := func(name string, v int64) {
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, v, 10)
	}
	if in("hold") {
		str("hold", s.Hold)
	}
	if in("sale") {
		num("sale", s.Sale)
	}
	if in("buyer") {
		str("buyer", s.Buyer)
	}
	if in("qty") {
		num("qty", s.Qty)
	}
	if in("reason") {
		str("reason", s.Reason)
	}
	num("left", s.Left)
	if s.Held != 0 {
		num("held", s.Held)
	}
	if s.Total != 0 || s.Kind != KindSale {
		num("total", s.Total)
	}
	if s.Kind == KindInit && s.Limit != 0 || s.Kind == KindLimit {
		num("limit", s.Limit)
	}
	if in("expires") {
		b = append(b, `,"expires":"`...)
		b = s.Expires.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if in("pid") {
		num("pid", int64(s.PID))
	}
	b = append(b, `,"time":"`...)
	b = s.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, "\"}\n"...)
}

// recordMembers lists, for each kind, the members its line must have.
// Others may be there (optionalMembers): "total" in a sale (lines written
// before it was recorded have none), "held" (when not 0), "limit" in an
// init record.
var recordMembers = map[Kind][]string{
	KindSale:    {"seq", "buyer", "qty", "left", "pid", "time"},
	KindOutside: {"seq", "kind", "qty", "left", "total", "time"},
	KindRestock: {"seq", "kind", "qty", "left", "total", "time"},
	KindInit:    {"seq", "kind", "left", "total", "time"},
	KindHold:    {"seq", "kind", "hold", "buyer", "qty", "left", "total", "expires", "pid", "time"},
	KindConfirm: {"seq", "kind", "hold", "buyer", "qty", "left", "total", "pid", "time"},
	KindRelease: {"seq", "kind", "hold", "buyer", "qty", "reason", "left", "total", "time"},
	KindReturn:  {"seq", "kind", "sale", "buyer", "qty", "left", "total", "pid", "time"},
	KindAdd:     {"seq", "kind", "qty", "left", "total", "pid", "time"},
	KindRemove:  {"seq", "kind", "qty", "left", "total", "pid", "time"},
	KindLimit:   {"seq", "kind", "left", "total", "limit", "pid", "time"},
}

// optionalMembers lists, for each kind, the members its line may have
// beyond recordMembers.
var optionalMembers = map[Kind][]string{
	KindSale:    {"total", "held"},
	KindOutside: {"held"},
	KindRestock: {"held"},
	KindInit:    {"limit"},
	KindHold:    {"held"},
	KindConfirm: {"held"},
	KindRelease: {"held"},
	KindReturn:  {"held"},
	KindAdd:     {"held"},
	KindRemove:  {"held"},
	KindLimit:   {"held"},
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
		case "kind", "buyer", "time", "hold", "reason", "expires":
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
		case "seq", "qty", "left", "pid", "total", "held", "limit", "sale":
			if n, err = wholeNumber(m.key, m.value); err != nil {
				return Record{}, err
			}
		}
		switch m.key {
		case "held":
			s.Held = n
		case "limit":
			s.Limit = n
		case "sale":
			s.Sale = n
		case "hold", "reason", "expires":
			var text string
			if err := json.Unmarshal(m.value, &text); err != nil {
				return Record{}, invalidf("%s is not a string", m.key)
			}
			switch m.key {
			case "hold":
				if _, err := HoldSeq(text); err != nil {
					return Record{}, invalidf("%v", err)
				}
				s.Hold = text
			case "reason":
				if text != ReasonReleased && text != ReasonLapsed {
					return Record{}, invalidf("reason %q is not %q or %q", clipString(text), ReasonReleased, ReasonLapsed)
				}
				s.Reason = text
			case "expires":
				if s.Expires, err = time.Parse(time.RFC3339Nano, text); err != nil {
					return Record{}, invalidf("expires %q is not RFC 3339", clipString(text))
				}
			}
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
				return Record{}, invalidf("kind %q is not a kind of record (outside, restock, init, hold, confirm, release, return, add, remove, limit)", clipString(k))
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
	for name := range seen {
		if !slices.Contains(want, name) && !slices.Contains(optionalMembers[s.Kind], name) {
			return Record{}, invalidf("a %s record has only %s (and %s), not %q", s.Kind, listNames(want), listNames(optionalMembers[s.Kind]), name)
		}
	}
	switch {
	case s.Kind != KindInit && s.Seq < 1:
		return Record{}, invalidf("seq must be at least 1")
	case s.Kind != KindInit && s.Kind != KindLimit && s.Qty < 1:
		return Record{}, invalidf("qty must be at least 1")
	case seen["held"] && s.Held == 0:
		return Record{}, invalidf("held 0 is left out of a record")
	case seen["limit"] && s.Limit == 0 && s.Kind == KindInit:
		return Record{}, invalidf("limit 0 is left out of a record")
	case seen["total"] && (s.Left > s.Total || s.Held > s.Total-s.Left):
		return Record{}, invalidf("left %d and held %d are more than total %d", s.Left, s.Held, s.Total)
	case seen["sale"] && (s.Sale < 1 || s.Sale >= s.Seq):
		return Record{}, invalidf("return #%d names sale #%d, which does not come before it", s.Seq, s.Sale)
	}
	if s.Kind == KindHold {
		if n, _ := HoldSeq(s.Hold); n != s.Seq {
			return Record{}, invalidf("hold #%d has the id %s of another record", s.Seq, s.Hold)
		}
	}
	if s.Kind == KindConfirm || s.Kind == KindRelease {
		if n, _ := HoldSeq(s.Hold); n >= s.Seq {
			return Record{}, invalidf("%s #%d names hold %s, which does not come before it", s.Kind, s.Seq, s.Hold)
		}
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
