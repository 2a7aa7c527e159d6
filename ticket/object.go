package ticket

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// member is one name/value pair of a JSON object, the value as raw bytes.
type member struct {
	key    string
	rawKey []byte // the key as written in the input, quotes and escapes included
	value  json.RawMessage
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// parseObject splits data, which must be exactly one JSON object, into its
// members in order, refusing a name that differs from one of known only in
// case. It refuses what encoding/json would quietly accept or
// repair: duplicate names (it keeps the last), names differing only in case
// (it folds them), invalid UTF-8 (it substitutes U+FFFD).
func parseObject(data []byte, known []string) ([]member, error) {
	if members, ok := flatObject(data); ok {
		return members, nil
	}
	return strictObject(data, known)
}

// strictObject is parseObject through encoding/json's tokenizer: every
// object, and the error that says what is wrong with one.
func strictObject(data []byte, known []string) ([]member, error) {
	if bytes.HasPrefix(data, bom) {
		return nil, invalidf("starts with a UTF-8 byte order mark; save it without one")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, unreadablef("file is empty")
	}
	if !utf8.Valid(data) {
		return nil, unreadablef("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxProblem(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, invalidf("not a JSON object but %s", describe(tok))
	}
	var members []member
	seen := make(map[string]string) // folded name -> name as written
	for dec.More() {
		keyStart := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxProblem(err)
		}
		rawKey := bytes.TrimLeft(data[keyStart:dec.InputOffset()], " \t\r\n,")
		key, _ := tok.(string) // inside an object, Token always yields a string here
		folded := strings.ToLower(strings.ToUpper(key))
		if prev, dup := seen[folded]; dup {
			if prev == key {
				return nil, invalidf("member %q appears twice", key)
			}
			return nil, invalidf("members %q and %q differ only in case", prev, key)
		}
		seen[folded] = key
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, syntaxProblem(err)
		}
		members = append(members, member{key: key, rawKey: rawKey, value: value})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, syntaxProblem(err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, unreadablef("unexpected data after the JSON object")
		}
		return nil, invalidf("unexpected %s after the JSON object", describe(tok))
	}
	for _, m := range members {
		for _, k := range known {
			if m.key != k && strings.EqualFold(m.key, k) {
				return nil, invalidf("member %q is not %q: names are case-sensitive", m.key, k)
			}
		}
	}
	return members, nil
}

// The member names each format reads: a name that differs from one of them
// only in case is a mistake, refused.
var (
	stateNames  = []string{"count", "total", "sold", "version", "held", "limit"}
	recordNames = []string{"seq", "kind", "hold", "sale", "buyer", "qty", "reason", "left", "held", "total", "limit", "expires", "pid", "time"}
)

func syntaxProblem(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return unreadablef("truncated JSON: the object is not closed")
	case errors.As(err, &se):
		return unreadablef("bad JSON at byte %d: %s", se.Offset, se.Error())
	default:
		return unreadablef("bad JSON: %s", err.Error())
	}
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return fmt.Sprintf("%q", string(v))
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%v", tok)
}

// flatObject is parseObject's quick path, for what ticket writes itself
// (a ticket file, a journal line) and most of what others write: one
// object of members whose names are lowercase ASCII letters and
// underscores, each once, and whose values are whole numbers without a
// leading zero or strings without escapes or control characters, with
// only spaces between them and only white space after the object. It
// reports false for anything else, which strictObject then reads (and
// refuses where it must): what flatObject accepts, strictObject accepts
// with the same members (FuzzFlatObject).
func flatObject(data []byte) ([]member, bool) {
	const maxFlatMembers = 16 // a ticket file has 4 members or a few more, a record at most 8
	i := 0
	spaces := func() {
		for i < len(data) && data[i] == ' ' {
			i++
		}
	}
	if len(data) == 0 || data[0] != '{' || !utf8.Valid(data) {
		return nil, false
	}
	i++
	members := make([]member, 0, 8)
	spaces()
	if i < len(data) && data[i] == '}' {
		return nil, false // an empty object: rare, and refused anyway
	}
	for {
		// The name.
		if i >= len(data) || data[i] != '"' {
			return nil, false
		}
		start := i
		i++
		for i < len(data) && (data[i] >= 'a' && data[i] <= 'z' || data[i] == '_') {
			i++
		}
		if i >= len(data) || data[i] != '"' || i == start+1 {
			return nil, false
		}
		i++
		rawKey := data[start:i]
		key := string(rawKey[1 : len(rawKey)-1])
		if len(members) == maxFlatMembers {
			return nil, false // the duplicate check below is quadratic
		}
		for _, m := range members {
			if m.key == key {
				return nil, false // twice: strictObject says so
			}
		}
		spaces()
		if i >= len(data) || data[i] != ':' {
			return nil, false
		}
		i++
		spaces()
		// The value.
		vstart := i
		switch {
		case i < len(data) && data[i] == '"':
			i++
			for i < len(data) && data[i] != '"' && data[i] != '\\' && data[i] >= 0x20 {
				i++
			}
			if i >= len(data) || data[i] != '"' {
				return nil, false
			}
			i++
		case i < len(data) && data[i] == '0':
			i++
		case i < len(data) && data[i] >= '1' && data[i] <= '9':
			for i < len(data) && data[i] >= '0' && data[i] <= '9' {
				i++
			}
		default:
			return nil, false
		}
		members = append(members, member{key: key, rawKey: rawKey, value: json.RawMessage(data[vstart:i])})
		spaces()
		if i >= len(data) {
			return nil, false
		}
		if data[i] == '}' {
			i++
			break
		}
		if data[i] != ',' {
			return nil, false
		}
		i++
		spaces()
	}
	for ; i < len(data); i++ {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
		default:
			return nil, false
		}
	}
	return members, true
}
