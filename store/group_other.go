//go:build !linux

package store

import (
	"context"
	"time"
)

// groupBuy is Buy through group commit, which needs Linux futexes: here
// every buy takes the lock itself.
func (s *Store) groupBuy(ctx context.Context, buyer string, qty int64) (Receipt, bool, error) {
	return Receipt{}, false, nil
}

// groupSafety and groupWake are the group commit knobs the tests set.
var (
	groupSafety = time.Second
	groupWake   = true
)
