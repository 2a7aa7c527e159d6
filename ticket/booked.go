package ticket

// Booked returns the state of a sale at version with left and held of
// total tickets, sold the rest: the books as a backend that keeps them
// apart from a ticket file (Redis) holds them, its open holds kept beside
// (the caller's, as a ticket file's are in its index). It refuses, with an
// error wrapping ErrInvalid, numbers that cannot be a sale's (see At), and
// more held than total minus left. A limit is added with WithLimit.
func Booked(version, left, held, total int64) (State, error) {
	st, err := At(version, left, total)
	if err != nil {
		return st, err
	}
	if held < 0 || held > total-left {
		return State{}, invalidf("%d held is not between 0 and total %d minus %d left", held, total, left)
	}
	st.held, st.sold = held, st.sold-held
	return st, nil
}
