//go:build linux

package group

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/ticketd/ticket/store/internal/seam"
)

// How a buyer waits, in step with Go's runtime.
//
// A buyer waits in system calls the runtime cannot see into: its futex
// sleep, a successor's flock(2), a leader's fdatasync. The runtime's
// monitor thread (sysmon) takes the processor (P) back from a goroutine
// that has stayed in one system call for 10 ms, or whose P has not been
// through the scheduler for 10 ms (a buyer that only ever waits in system
// calls never is: returning from one does not count), and each time it
// does, it wakes a thread for the P, sleeps once every P is idle, is woken
// when the buyer returns, and then polls every 20 us for a millisecond or
// more. Measured with ticket bench --procs 16 on 2 cores: 4.5 of those
// polls per buy, most of all context switches, and about a quarter of the
// CPU the buyer processes used.
//
// So a buyer whose waits are short passes through the scheduler now and
// then (passScheduler, at the start of each round of its Buy), and sleeps
// on its slot in slices shorter than 10 ms: the monitor finds nothing to
// take in a wait shorter than a slice, and backs off to a poll every 10
// ms. The yield does most of it (ticket bench --procs 16: 1.39x with the
// yield alone, 1.00x with the slices alone, 1.63x with both). A wait
// longer than a slice can still lose its P: the P has not been through the
// scheduler since the round began. A buyer whose waits are long (many
// more buyers than processors: 64 processes on 2 cores waited 15 ms each)
// would have its P taken anyway, and passing through the scheduler made it
// three times slower there (before each wait, or between slices alike:
// each yield wakes a second thread); it sleeps as before, in one call.

// sleepSlice is the longest single futex sleep of a buyer whose waits are
// short: under the monitor's 10 ms.
const sleepSlice = 9 * time.Millisecond

// longWait is the average wait from which a buyer's waits count as long.
const longWait = 8 * time.Millisecond

// waitAvg is a moving average of this process's sleeps on its slots, in
// nanoseconds (each new one weighs a quarter, counted as 2*longWait at
// most, so that one sleep that ran into the safety net does not make the
// next dozen long). Goroutines of one process share it; a lost update only
// makes it rougher.
var waitAvg atomic.Int64

// waitsShort reports whether this process's recent waits were short.
func waitsShort() bool { return waitAvg.Load() < int64(longWait) }

// passEvery is how often passScheduler yields at most: well within the
// monitor's 10 ms.
const passEvery = 5 * time.Millisecond

// lastPass is when passScheduler last yielded, as time since epoch.
var (
	lastPass atomic.Int64
	epoch    = time.Now()
)

// passScheduler yields the processor (runtime.Gosched) if this process
// has not done so for passEvery, so that the monitor counts the buyer's P
// as one that goes through the scheduler. The limit is the process's, the
// monitor's count each P's: a process whose buyers run on several Ps at
// once yields for one of them at a time, which only makes the others
// lose theirs as before.
func passScheduler() {
	now := int64(time.Since(epoch))
	last := lastPass.Load()
	if now-last < int64(passEvery) || !lastPass.CompareAndSwap(last, now) {
		return
	}
	runtime.Gosched()
}

// sleep waits until the slot's wake word no longer holds w, at most
// seam.GroupSafety (0: until it changes), and reports false if that time
// passed. Only the word changing (or a signal) ends it early: a sleep in
// slices is the one sleep the protocol describes, cut up.
func (b *buyer) sleep(w uint32) bool {
	short := waitsShort()
	start := time.Now()
	defer func() {
		d, avg := min(int64(time.Since(start)), int64(2*longWait)), waitAvg.Load()
		waitAvg.Store(avg + (d-avg)/4)
	}()
	var deadline time.Time
	if seam.GroupSafety > 0 {
		deadline = start.Add(seam.GroupSafety)
	}
	for {
		var d time.Duration // 0: until woken
		if short {
			d = sleepSlice
		}
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return false
			}
			if d == 0 || left < d {
				d = left
			}
		}
		if futexWait(b.sl.wake(), w, d) || b.sl.wake().Load() != w {
			return true
		}
	}
}
