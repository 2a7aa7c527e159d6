package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// The README's library example, run twice on a sale of one ticket: the
// second buyer finds it sold out.
func ExampleStore_Buy() {
	dir, _ := os.MkdirTemp("", "ticket-example")
	defer os.RemoveAll(dir)
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	_ = os.Chdir(dir)
	ctx := context.Background()
	if _, _, err := store.Open("ticket.json", store.Options{}).Init(ctx, 1, store.Create); err != nil {
		fmt.Println(err)
		return
	}
	for range 2 {
		// README: library use
		s := store.Open("ticket.json", store.Options{})
		r, err := s.Buy(ctx, "person3", 1) // ctx bounds the wait for the lock
		switch {
		case errors.Is(err, ticket.ErrSoldOut): // fewer left than asked
			fmt.Println("sold out")
		case errors.Is(err, store.ErrLocked): // ctx's deadline passed while another process held the lock
		case errors.Is(err, ticket.ErrInvalid): // the file or journal is refused, untouched
		case err != nil:
		default:
			fmt.Println("sale", r.Sale.Seq, "left", r.State.Left())
		}
		// README end
	}
	// Output:
	// sale 1 left 0
	// sold out
}

// TestREADMELibrarySnippet keeps the README's library example the code of
// ExampleStore_Buy, which compiles and runs.
func TestREADMELibrarySnippet(t *testing.T) {
	src, err := os.ReadFile("example_readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, code, _ := strings.Cut(string(src), "// README: library use\n")
	code, _, _ = strings.Cut(code, "\t\t// README end")
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, snippet, _ := strings.Cut(string(readme), "## Library use\n\n```go\n")
	snippet, _, _ = strings.Cut(snippet, "```")
	if dedent(code) != dedent(snippet) {
		t.Errorf("the README's library example is not ExampleStore_Buy's code:\n%s\nwant:\n%s", snippet, dedent(code))
	}
}

// dedent takes two tabs off each line, as the example's body has them.
func dedent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "\t\t")
	}
	return strings.Join(lines, "\n")
}
