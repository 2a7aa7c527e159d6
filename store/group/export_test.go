//go:build linux

package group

import (
	"fmt"
	"time"
)

// Successor returns the pid of the region's successor, 0 if none.
func (r *Region) Successor() int32 { return r.i32(offSuccessor).Load() }

// Pending counts the pending requests.
func (r *Region) Pending() int { return r.pending() }

// BatchOpen reports whether a leader's batch is open (a crashed one's).
func (r *Region) BatchOpen() bool { return r.u32(offBatchOpen).Load() != 0 }

// Owners returns the owner of every slot, 0 for a free one.
func (r *Region) Owners() []int32 {
	owners := make([]int32, groupSlots)
	for i := range owners {
		owners[i] = r.slot(i).owner().Load()
	}
	return owners
}

// WakeAfterUnlock is the wake-up a leader owes once it has unlocked.
func (r *Region) WakeAfterUnlock() { r.wakeAfterUnlock(slot{}) }

// Slots describes the slots in use, for failure messages.
func (r *Region) Slots() []string {
	var out []string
	for i := range groupSlots {
		s := r.slot(i)
		if s.owner().Load() != 0 {
			out = append(out, fmt.Sprintf("%d:owner=%d,state=%d,seq=%d", i, s.owner().Load(), s.state().Load(), s.i64(offSeq).Load()))
		}
	}
	return out
}

// SetWaitAvg sets this process's moving average of waits.
func SetWaitAvg(d time.Duration) { waitAvg.Store(int64(d)) }

// WaitsShort reports whether this process's buyers sleep in slices.
func WaitsShort() bool { return waitsShort() }

// SleepSlice is the slice of a short-waiting buyer's sleep.
const SleepSlice = sleepSlice
