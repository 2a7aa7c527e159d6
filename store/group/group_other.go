//go:build !linux

package group

import (
	"context"
	"errors"

	"github.com/ticketd/ticket/ticket"
)

// A Region is the shared memory of one sale's group commit. Without Linux
// futexes there is none: Open always fails.
type Region struct{}

// Open reports that group commit needs Linux.
func Open(journalPath string) (*Region, error) {
	return nil, errors.New("group commit needs Linux")
}

// Buy never serves a request here: see Open.
func (r *Region) Buy(ctx context.Context, sale Sale, req Request) (ticket.Record, ticket.State, error) {
	return ticket.Record{}, ticket.State{}, ErrAlone
}

// A Batch is one leader's commit of a region's requests; there is none
// without a Region.
type Batch struct{}

// Decide is never called without a Region.
func (b *Batch) Decide(state ticket.State, j Journal) (ticket.State, []ticket.Record, error) {
	return state, nil, ErrAlone
}

// Durable is never called without a Region.
func (b *Batch) Durable() bool { return true }

// Done is never called without a Region.
func (b *Batch) Done(o Outcome) {}
