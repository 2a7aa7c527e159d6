package lock

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// flockHold opens path and takes its lock (an outside holder), returning the
// open file.
func flockHold(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestKeptWaiterOfAReplacedFile: two lockers of one Kept with cancellable
// contexts share a waiter on lock file X; X is replaced by Y while an
// outside holder has X and another has Y. The locker that takes the
// waiter's lock of X holds X (gone) and must go on to Y; the other locker
// re-takes the kept descriptor of X, finds it busy (held by the first) and
// starts a NEW waiter on X. The first then finds Y busy and joins that
// waiter, which waits for X, which the first holds: once Y's holder lets
// go, nobody outside holds anything, yet neither locker ever gets the lock
// (the deadline below only ends the deadlock so the test can report it).
func TestKeptWaiterOfAReplacedFile(t *testing.T) {
	for i := range 40 {
		dir := t.TempDir()
		path := filepath.Join(dir, "t.json.lock")
		k := Keep(path)
		unlock, err := k.Lock(context.Background(), like)
		if err != nil {
			t.Fatal(err)
		}
		unlock()
		hx := flockHold(t, path)
		type res struct{ err error }
		got := make(chan res, 2)
		for range 2 {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				unlock, err := k.Lock(ctx, like)
				if err == nil {
					unlock()
				}
				got <- res{err}
			}()
		}
		// Wait until both lockers share one waiter.
		for {
			k.mu.Lock()
			n := 0
			if k.waiter != nil {
				n = k.waiter.users
			}
			k.mu.Unlock()
			if n == 2 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		// Replace X by Y, held by another outside holder.
		tmp := filepath.Join(dir, "new.lock")
		hy := flockHold(t, tmp)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		hx.Close() // the waiter gets X
		time.Sleep(50 * time.Millisecond)
		hy.Close() // nobody outside holds anything now
		for range 2 {
			if r := <-got; r.err != nil {
				k.Close()
				t.Fatalf("iteration %d: Lock = %v with no outside holder left: the lockers deadlocked on the gone file X", i, r.err)
			}
		}
		k.Close()
	}
}

// TestKeptMovedBack: two Kepts (two processes, as far as flock(2)
// is concerned) and a lock file moved away and back (X -> Y -> X). P1 locks
// its kept X while Y is at the path: X is gone, held; P1 waits for Y. P2
// waits for Y too (opened while Y was at the path). X is moved back over Y,
// then Y's outside holder lets go. If P2 gets Y, it finds Y gone, holds it
// and waits for X, which P1 holds while it waits for Y: a cycle across
// processes (each Kept waits with context.Background(), as the journal's
// OpenLocked and Store.lock with no deadline do; the deadline here only ends
// it so the test can report it).
func TestKeptMovedBack(t *testing.T) {
	for i := range 20 {
		dir := t.TempDir()
		path := filepath.Join(dir, "t.json.lock")
		bak := filepath.Join(dir, "t.json.lock.bak")
		k1 := Keep(path)
		unlock, err := k1.Lock(context.Background(), like)
		if err != nil {
			t.Fatal(err)
		}
		unlock() // k1 keeps a descriptor of X
		if err := os.Rename(path, bak); err != nil {
			t.Fatal(err)
		}
		hy := flockHold(t, path) // Y, created at the path and held
		k2 := Keep(path)
		got := make(chan error, 2)
		for _, k := range []*Kept{k1, k2} {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				unlock, err := k.Lock(ctx, like)
				if err == nil {
					unlock()
				}
				got <- err
			}()
		}
		time.Sleep(50 * time.Millisecond)            // both wait in flock(2) for Y; P1 holds X
		if err := os.Rename(bak, path); err != nil { // X moved back
			t.Fatal(err)
		}
		hy.Close()
		for range 2 {
			if err := <-got; err != nil {
				k1.Close()
				k2.Close()
				t.Fatalf("iteration %d: Lock = %v with no outside holder left: two lockers deadlocked on a lock file moved back", i, err)
			}
		}
		k1.Close()
		k2.Close()
	}
}

// TestKeptDeadFileDoesNotBlock: a flock(1) script holds the lock file X for
// long; someone deletes the "stale" X. Peers that open the path lock the
// new file at once; a Kept whose kept descriptor is of X waits in flock(2)
// for the script, though the file at the path is free (a fresh lock.Lock
// gets it at once: the control).
func TestKeptDeadFileDoesNotBlock(t *testing.T) {
	path, k := usedOnce(t)
	hx := flockHold(t, path)
	defer hx.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	unlock, err := LockLike(ctx, path, like) // control: the path's file is free
	if err != nil {
		t.Fatalf("control: %v", err)
	}
	unlock()
	unlock, err = k.Lock(ctx, like)
	if err != nil {
		t.Fatalf("Kept.Lock = %v while the file at the path is free (a peer locked it just now)", err)
	}
	unlock()
}

// TestKeptJoinsOnlyItsFilesWaiter: a locker whose descriptor is of the
// file at the path (Y) finds it busy while the Kept's waiter waits for a
// file replaced since (X, which a script holds): it waits for Y, not for X
// (found by a review: it joined X's waiter and waited for X after Y was
// free).
func TestKeptJoinsOnlyItsFilesWaiter(t *testing.T) {
	path, k := usedOnce(t)
	dir := filepath.Dir(path)
	hx := flockHold(t, path)
	defer hx.Close()
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	go k.Lock(ctxA, like) // the kept descriptor, of X at the path: the waiter on X
	var wx *waiter
	for wx == nil {
		k.mu.Lock()
		wx = k.waiter
		k.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	tmp := filepath.Join(dir, "new.lock")
	hy := flockHold(t, tmp)
	if err := os.Rename(tmp, path); err != nil { // X replaced by Y, held
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		unlock, err := k.Lock(ctx, like) // opens Y, busy: waits for Y
		if err == nil {
			unlock()
		}
		got <- err
	}()
	for {
		k.mu.Lock()
		w := k.waiter
		k.mu.Unlock()
		if w != nil && w != wx {
			break // Y's waiter
		}
		time.Sleep(time.Millisecond)
	}
	hy.Close() // Y, the file at the path, is free
	if err := <-got; err != nil {
		t.Fatalf("Lock = %v while the file at the path was free: it waited for the replaced X", err)
	}
}
