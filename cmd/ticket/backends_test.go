package main

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/ticketd/ticket/internal/redistest"
	"github.com/ticketd/ticket/store"
)

// backends are the kinds of sale the table tests run against: each spec
// returns a fresh, not yet created sale (a path in a new directory, or a
// sale on a redis-server of the test's own).
var backends = []struct {
	name string
	spec func(t *testing.T) string
}{
	{"file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "ticket.json") }},
	{"redis", func(t *testing.T) string { return redistest.Start(t).URL(nextSale()) }},
}

var saleNumber atomic.Int64

func nextSale() string { return fmt.Sprintf("sale%d", saleNumber.Add(1)) }

// openSpec opens a sale by spec, closed when the test ends.
func openSpec(t *testing.T, spec string) store.Backend {
	t.Helper()
	s, err := store.OpenSpec(spec, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
