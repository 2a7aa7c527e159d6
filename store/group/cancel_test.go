//go:build linux

package group_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/group"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/store/internal/storetest"
)

// TestGroupCancelMidSleep: in-process buyers sleep in slices (short mode,
// no safety net) behind a held lock, a child process being the successor.
// Their contexts are cancelled one by one at staggered moments that fall
// on and between slice boundaries. Each must return (only the cancel's
// wake-up can end a sleep with no safety net while the lock is held),
// with nothing bought; the uncancelled ones (the control) must still be
// asleep and pending. Then, in a second phase, cancels land while the
// lock is released and the successor leads: every buyer either got a sale
// that the journal holds once under its name, or got a wait error and
// the journal holds nothing for it.
func TestGroupCancelMidSleep(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			path := storetest.NewSale(t, 1000, 1)
			reg := region(t, path)
			old := seam.GroupSafety
			seam.GroupSafety = 0
			t.Cleanup(func() { seam.GroupSafety = old; group.SetWaitAvg(0) })
			group.SetWaitAvg(0)
			release := storetest.HoldLock(t, path+".lock")
			released := false
			defer func() {
				if !released {
					release()
				}
			}()
			succ := storetest.Buyers(t, path, 1, 1, storetest.Safety+"=0s")
			storetest.WaitFor(t, 20*time.Second, "a successor", func() bool { return reg.Successor() == int32(succ[0].Process.Pid) })

			s := store.Open(path, store.Options{})
			const cancelled, kept = 30, 6
			type out struct {
				name string
				err  error
			}
			outs := make(chan out, cancelled+kept)
			cancels := make([]context.CancelFunc, cancelled+kept)
			for i := range cancelled + kept {
				ctx, cancel := context.WithCancel(context.Background())
				cancels[i] = cancel
				name := fmt.Sprintf("r%d-c%d", round, i)
				go func() {
					_, err := s.Buy(ctx, name, 1)
					outs <- out{name, err}
				}()
			}
			t.Cleanup(func() {
				for _, c := range cancels {
					c()
				}
			})
			storetest.WaitFor(t, 20*time.Second, "all buyers pending", func() bool { return reg.Pending() == 1+cancelled+kept })
			if !group.WaitsShort() {
				t.Logf("this process's waits count as long: the buyers sleep in one call, not in slices")
			}
			// Staggered cancels: every ~SleepSlice/4 plus a bit, so that
			// some fall right at slice ends.
			var wg sync.WaitGroup
			for i := range cancelled {
				d := time.Duration(i)*group.SleepSlice/4 + time.Duration(round)*time.Millisecond/3
				wg.Add(1)
				time.AfterFunc(d, func() { cancels[i](); wg.Done() })
			}
			wg.Wait()
			got := map[string]error{}
			timeout := time.After(60 * time.Second)
			for len(got) < cancelled {
				select {
				case o := <-outs:
					got[o.name] = o.err
				case <-timeout:
					t.Fatalf("only %d of %d cancelled buyers returned while the lock was held (slots: %v)", len(got), cancelled, reg.Slots())
				}
			}
			for name, err := range got {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("%s: %v, want context.Canceled", name, err)
				}
			}
			if n := reg.Pending(); n != 1+kept {
				t.Fatalf("%d pending after the cancels, want %d (the successor's and the uncancelled ones)", n, 1+kept)
			}
			// Phase 2: cancel the kept ones while the lock is let go.
			for i := cancelled; i < cancelled+kept; i++ {
				time.AfterFunc(time.Duration(i-cancelled)*time.Millisecond/2, cancels[i])
			}
			release()
			released = true
			for len(got) < cancelled+kept {
				select {
				case o := <-outs:
					got[o.name] = o.err
				case <-timeout:
					t.Fatalf("only %d of %d buyers returned after release", len(got), cancelled+kept)
				}
			}
			if n := storetest.WaitAll(succ, 60*time.Second); n != 1 || succ[0].Err != nil {
				t.Fatalf("successor: %v %s", succ[0].Err, succ[0].Stderr())
			}
			sales := storetest.SalesByBuyer(t, path)
			sold := 0
			for name, err := range got {
				switch {
				case err == nil:
					sold++
					if sales[name] != 1 {
						t.Errorf("%s: bought, journal holds %d sales for it", name, sales[name])
					}
				case errors.Is(err, context.Canceled):
					if sales[name] != 0 {
						t.Errorf("%s: cancelled, journal holds %d sales for it", name, sales[name])
					}
				default:
					t.Errorf("%s: %v", name, err)
				}
			}
			rep := storetest.MustBalance(t, path)
			if want := int64(2 + sold); rep.Sales != want {
				t.Fatalf("%d sales, want %d", rep.Sales, want)
			}
			t.Logf("phase 2: %d of %d kept buyers bought before their cancel", sold, kept)
		})
	}
}
