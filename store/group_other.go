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

// groupNotify has no buyers asleep to wake here.
func groupNotify(lockPath string) {}

// groupSafety and groupWake are the group commit knobs the tests set.
var (
	groupSafety = time.Second
	groupWake   = true
)

// resetStale has no slots to reset here.
func resetStale(lockPath string) {}
