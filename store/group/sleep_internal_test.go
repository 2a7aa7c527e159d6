//go:build linux

package group

import (
	"fmt"
	"testing"
	"time"

	"github.com/ticketd/ticket/store/internal/seam"
)

// sleeper is a buyer with a slot of a region in this process's memory
// (a futex works on any memory), whose recent waits were short or long.
func sleeper(t *testing.T, long bool) *buyer {
	t.Helper()
	old := waitAvg.Load()
	t.Cleanup(func() { waitAvg.Store(old) })
	waitAvg.Store(0)
	if long {
		waitAvg.Store(int64(time.Second))
	}
	r := &Region{mem: make([]byte, regionSize)}
	return &buyer{r: r, sl: r.slot(3)}
}

func withSafety(t *testing.T, d time.Duration) {
	t.Helper()
	old := seam.GroupSafety
	seam.GroupSafety = d
	t.Cleanup(func() { seam.GroupSafety = old })
}

// TestSleepEndsOnlyWhenWoken checks that a sleep cut into slices (a buyer
// whose waits are short) is still one sleep: slices that end without a
// wake-up go on sleeping, and the sleep ends when the wake word changes,
// several slices later. Safety 0 means until woken, as in the protocol's
// tests of lost wake-ups.
func TestSleepEndsOnlyWhenWoken(t *testing.T) {
	for _, long := range []bool{false, true} {
		t.Run(fmt.Sprintf("long=%v", long), func(t *testing.T) {
			withSafety(t, 0)
			b := sleeper(t, long)
			w := b.sl.wake().Load()
			after := 3*sleepSlice + sleepSlice/2
			woke := make(chan time.Time, 1)
			go func() {
				time.Sleep(after)
				woke <- time.Now()
				wakeSlot(b.sl)
			}()
			if !b.sleep(w) {
				t.Fatal("sleep reported its safety net, with none set")
			}
			select {
			case <-woke:
			default:
				t.Fatalf("sleep ended before its slot was woken (woken after %v)", after)
			}
			if b.sl.wake().Load() == w {
				t.Fatal("sleep ended with its wake word unchanged")
			}
		})
	}
}

// TestSleepSafetyNet checks that a sleep nobody ends reports so once
// seam.GroupSafety has passed, and not before, sliced or not.
func TestSleepSafetyNet(t *testing.T) {
	for _, long := range []bool{false, true} {
		t.Run(fmt.Sprintf("long=%v", long), func(t *testing.T) {
			safety := 2*sleepSlice + sleepSlice/3
			withSafety(t, safety)
			b := sleeper(t, long)
			start := time.Now()
			if b.sleep(b.sl.wake().Load()) {
				t.Fatal("sleep reported a wake-up nobody made")
			}
			if d := time.Since(start); d < safety {
				t.Fatalf("sleep gave up after %v, before its safety net of %v", d, safety)
			}
		})
	}
}

// TestSleepMissesNoWakeUp checks that a wake-up made between reading the
// wake word and sleeping ends the sleep at once: the futex compares the
// word first.
func TestSleepMissesNoWakeUp(t *testing.T) {
	withSafety(t, 0)
	b := sleeper(t, false)
	w := b.sl.wake().Load()
	wakeSlot(b.sl)
	if !b.sleep(w) {
		t.Fatal("sleep reported its safety net, with none set")
	}
}

// TestWaitsTurnLong checks that the average of a process's sleeps moves
// from short to long as its buyers wait long, and back: the switch between
// sliced sleeps that pass through the scheduler and one plain sleep.
func TestWaitsTurnLong(t *testing.T) {
	withSafety(t, 0)
	b := sleeper(t, false)
	for i := 0; waitsShort(); i++ {
		if i == 20 {
			t.Fatalf("waits of %v each still count as short (average %v)", 2*longWait, time.Duration(waitAvg.Load()))
		}
		w := b.sl.wake().Load()
		time.AfterFunc(2*longWait, func() { wakeSlot(b.sl) })
		b.sleep(w)
	}
	for i := 0; !waitsShort(); i++ {
		if i == 40 {
			t.Fatalf("waits that end at once still count as long (average %v)", time.Duration(waitAvg.Load()))
		}
		w := b.sl.wake().Load()
		wakeSlot(b.sl)
		b.sleep(w)
	}
}
