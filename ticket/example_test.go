package ticket_test

import (
	"errors"
	"fmt"

	"github.com/ticketd/ticket/ticket"
)

// A seed file, as a person writes it, and a file the store wrote: both
// parse; one that says a count twice is refused.
func ExampleParse() {
	for _, file := range []string{
		`{"count": 5}`,
		`{"count": 3, "total": 5, "sold": 2, "version": 2, "event": "gala"}`,
		`{"count": 5, "count": 6}`,
	} {
		st, err := ticket.Parse([]byte(file))
		if err != nil {
			fmt.Println("refused:", err, errors.Is(err, ticket.ErrInvalid))
			continue
		}
		fmt.Printf("%s at version %d\n", st, st.Version())
	}
	// Output:
	// 5 left of 5 (0 sold) at version 0
	// 3 left of 5 (2 sold) at version 2
	// refused: member "count" appears twice true
}

// The buy rule: all or nothing, one version per sale, the file's other
// members kept.
func ExampleState_Take() {
	st, _ := ticket.Parse([]byte(`{"count": 3, "event": "gala"}`))
	next, err := st.Take(2)
	fmt.Println(next, err)
	fmt.Printf("%s", next.Encode())
	_, err = next.Take(2)
	fmt.Println(errors.Is(err, ticket.ErrSoldOut))
	// Output:
	// 1 left of 3 (2 sold) <nil>
	// {"count": 1, "total": 3, "sold": 2, "version": 1, "event": "gala"}
	// true
}

// A journal line, and the ledger that checks the records follow one
// another and match the state.
func ExampleLedger() {
	var l ticket.Ledger
	for _, line := range []string{
		`{"seq":0,"kind":"init","left":5,"total":5,"time":"2026-11-25T20:00:00Z"}`,
		`{"seq":1,"buyer":"alice","qty":2,"left":3,"total":5,"pid":42,"time":"2026-11-25T20:00:01Z"}`,
		`{"seq":2,"kind":"outside","qty":1,"left":2,"total":5,"time":"2026-11-25T20:00:02Z"}`,
	} {
		r, err := ticket.ParseRecord([]byte(line))
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(r.Describe())
		l.Add(r)
	}
	books, err := l.Books()
	fmt.Println(books, err, l.Counts())
	l.Check(books, "the last record", "the state")
	fmt.Println("problems:", l.Problems())
	// Output:
	// started with 5 left of 5
	// alice bought 2
	// 1 taken outside ticket
	// 2 left of 5 (3 sold) <nil> {1 2 1 0}
	// problems: []
}
