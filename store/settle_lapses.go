package store

import (
	"context"

	"github.com/ticketd/ticket/ticket"
)

// Settle takes the lock and records what a reader only counts: the holds
// that have expired, released as lapsed, and whatever else the next writer
// would settle (records committed beyond the ticket file, a change made
// outside ticket). It records nothing of its own, and writes nothing when
// there is nothing to settle. It is for a caller that wants the journal to
// tell the whole story now, not at the next buy: ticket rush, after the
// holds it took have lapsed. It returns the state settled, which the ticket
// file then holds; on an error, the state found, which may not be recorded.
func (s *Store) Settle(ctx context.Context) (ticket.State, error) {
	var settled ticket.State
	err := s.update(ctx, func(state ticket.State, _ *journal) (ticket.State, []ticket.Record, error) {
		settled = state
		return state, nil, nil
	})
	return settled, err
}
