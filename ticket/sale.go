package ticket

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode"
)

// MaxBuyerLen is the longest buyer name, in bytes.
const MaxBuyerLen = 200

// Sale is one committed buy: a line of the sales journal.
type Sale struct {
	Seq   int64     `json:"seq"`   // 1 for the first sale, then one more per sale
	Buyer string    `json:"buyer"` // who bought, as given to the buy
	Qty   int64     `json:"qty"`   // tickets taken, at least 1
	Left  int64     `json:"left"`  // tickets left after this sale
	PID   int       `json:"pid"`   // process that made the sale
	Time  time.Time `json:"time"`  // when the sale was committed, UTC
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
func (s Sale) AppendLine(b []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, s.Seq, 10)
	b = append(b, `,"buyer":`...)
	name, _ := json.Marshal(s.Buyer) // a string always marshals
	b = append(b, name...)
	b = append(b, `,"qty":`...)
	b = strconv.AppendInt(b, s.Qty, 10)
	b = append(b, `,"left":`...)
	b = strconv.AppendInt(b, s.Left, 10)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(s.PID), 10)
	b = append(b, `,"time":"`...)
	b = s.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, "\"}\n"...)
}

// ParseSale reads one journal line (without its newline) as strictly as
// Parse reads a ticket file: every member present exactly once, no others,
// seq and qty at least 1, left at least 0, a valid buyer and an RFC 3339 time.
func ParseSale(line []byte) (Sale, error) {
	members, err := parseObject(line, saleNames)
	if err != nil {
		return Sale{}, err
	}
	var s Sale
	seen := 0
	for _, m := range members {
		var n int64
		switch m.key {
		case "seq", "qty", "left", "pid":
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
		case "pid":
			if n > 1<<31 {
				return Sale{}, invalidf("pid %d is out of range", n)
			}
			s.PID = int(n)
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
		seen++
	}
	if seen != 6 {
		return Sale{}, invalidf("a sale needs seq, buyer, qty, left, pid and time")
	}
	if s.Seq < 1 || s.Qty < 1 {
		return Sale{}, invalidf("seq and qty must be at least 1")
	}
	return s, nil
}
