package ticket

import (
	"math"
	"slices"
)

// Booked returns the state of a sale at version with left and held of
// total tickets, sold the rest, and the open holds: the books as a backend
// that keeps them apart from a ticket file (Redis) holds them. It refuses,
// with an error wrapping ErrInvalid, numbers that cannot be a sale's (see
// At), more held than total minus left, and holds whose tickets are not
// held or that repeat an id. holds may be nil where the caller does not
// know them (the state a script answered with): held is then taken as
// given. A limit is added with WithLimit.
func Booked(version, left, held, total int64, holds []Hold) (State, error) {
	st, err := At(version, left, total)
	if err != nil {
		return st, err
	}
	if held < 0 || held > total-left {
		return State{}, invalidf("%d held is not between 0 and total %d minus %d left", held, total, left)
	}
	var sum int64
	ids := make(map[string]bool, len(holds))
	for _, h := range holds {
		if ids[h.ID] {
			return State{}, invalidf("hold %s appears twice", h.ID)
		}
		ids[h.ID] = true
		if h.Qty < 1 || h.Qty > math.MaxInt64-sum {
			return State{}, invalidf("hold %s of %d tickets", h.ID, h.Qty)
		}
		sum += h.Qty
	}
	if sum != held && holds != nil {
		return State{}, invalidf("%d held is not the %d tickets of the open holds", held, sum)
	}
	st.held, st.sold = held, st.sold-held
	if len(holds) > 0 {
		st.holds = slices.Clone(holds)
		for i := range st.holds {
			st.holds[i].Expires = st.holds[i].Expires.UTC()
		}
		slices.SortFunc(st.holds, compareHolds)
	}
	return st, nil
}
