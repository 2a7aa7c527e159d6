package lock

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests come from a review of the waiter and of a version that held
// a lock file it found deleted or replaced until its unlock: each hung
// then. Their deadlines only end a hang so that the test can report it.

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

// lockAsync locks through k in a goroutine, giving up after d, unlocks at
// once, and sends the outcome.
func lockAsync(k *Kept, d time.Duration) <-chan error {
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		unlock, err := k.Lock(ctx, like)
		if err == nil {
			unlock()
		}
		got <- err
	}()
	return got
}

// waiterNow returns k's waiter and how many lockers wait on it.
func waiterNow(k *Kept) (*waiter, int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.waiter == nil {
		return nil, 0
	}
	return k.waiter, k.waiter.users
}

// waitUntil polls cond until it holds.
func waitUntil(cond func() bool) {
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}

// TestKeptWaiterOfAReplacedFile: two lockers of one Kept share a waiter on
// lock file X, held outside; X is replaced by Y, held by another outside
// holder; both holders let go. Both lockers get the lock. (Holding X, found
// replaced, the locker that took the waiter's lock joined a new waiter on
// X that the other had started, and waited for itself.)
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
		got := []<-chan error{lockAsync(k, 3*time.Second), lockAsync(k, 3*time.Second)}
		waitUntil(func() bool { _, n := waiterNow(k); return n == 2 }) // one waiter for both
		// Replace X by Y, held by another outside holder.
		tmp := filepath.Join(dir, "new.lock")
		hy := flockHold(t, tmp)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		hx.Close() // the waiter gets X
		time.Sleep(50 * time.Millisecond)
		hy.Close() // nobody outside holds anything now
		for _, g := range got {
			if err := <-g; err != nil {
				k.Close()
				t.Fatalf("iteration %d: Lock = %v with no outside holder left: the lockers deadlocked on the replaced file X", i, err)
			}
		}
		k.Close()
	}
}

// TestKeptMovedBack: two Kepts (two processes, as far as flock(2) is
// concerned) and a lock file moved away and back (X -> Y -> X): P1 keeps a
// descriptor of X, P2 opens Y; both wait while Y is held outside; X is
// moved back over Y and Y's holder lets go. Both get the lock. (Holding a
// file found gone, P1 held X and waited for Y while P2 held Y and waited
// for X.)
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
		got := []<-chan error{lockAsync(k1, 3*time.Second), lockAsync(k2, 3*time.Second)}
		time.Sleep(50 * time.Millisecond)            // both wait
		if err := os.Rename(bak, path); err != nil { // X moved back
			t.Fatal(err)
		}
		hy.Close()
		for _, g := range got {
			if err := <-g; err != nil {
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
// long; someone deletes the "stale" X. A Kept whose kept descriptor is of X
// locks the new file at the path at once, as a fresh lock does (the
// control), instead of waiting in flock(2) for the script.
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
// (it joined X's waiter and waited for X after Y was free).
func TestKeptJoinsOnlyItsFilesWaiter(t *testing.T) {
	path, k := usedOnce(t)
	dir := filepath.Dir(path)
	hx := flockHold(t, path)
	defer hx.Close()
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	go k.Lock(ctxA, like) // the kept descriptor, of X at the path: the waiter on X
	var wx *waiter
	waitUntil(func() bool { wx, _ = waiterNow(k); return wx != nil })
	tmp := filepath.Join(dir, "new.lock")
	hy := flockHold(t, tmp)
	if err := os.Rename(tmp, path); err != nil { // X replaced by Y, held
		t.Fatal(err)
	}
	got := lockAsync(k, 10*time.Second)                                         // opens Y, busy: waits for Y
	waitUntil(func() bool { w, _ := waiterNow(k); return w != nil && w != wx }) // Y's waiter
	hy.Close()                                                                  // Y, the file at the path, is free
	if err := <-got; err != nil {
		t.Fatalf("Lock = %v while the file at the path was free: it waited for the replaced X", err)
	}
}
