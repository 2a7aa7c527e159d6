package lock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/store/internal/seam"
	"golang.org/x/sys/unix"
)

// opened counts this process's descriptors open on the file at path now.
func opened(t *testing.T, path string) int {
	t.Helper()
	want, err := os.Stat(path)
	if err != nil {
		return 0
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		if fi, err := os.Stat(filepath.Join("/proc/self/fd", e.Name())); err == nil && os.SameFile(fi, want) {
			n++
		}
	}
	return n
}

// heldElsewhere reports whether another open file holds the lock on path.
func heldElsewhere(t *testing.T, path string) bool {
	t.Helper()
	unlock, ok, err := TryLock(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		unlock()
	}
	return !ok
}

var like = files.Like{UID: -1}

// usedOnce returns a lock file's path and a Kept of it that has locked and
// unlocked it once, closed at the end of the test.
func usedOnce(t *testing.T) (string, *Kept) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.json.lock")
	k := Keep(path)
	t.Cleanup(func() { k.Close() })
	unlock, err := k.Lock(context.Background(), like)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	return path, k
}

func TestKeptKeepsItsDescriptor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.json.lock")
	k := Keep(path)
	for i := range 3 {
		unlock, err := k.Lock(context.Background(), like)
		if err != nil {
			t.Fatal(err)
		}
		if !heldElsewhere(t, path) {
			t.Fatalf("lock %d: another descriptor took the lock the Kept holds", i)
		}
		unlock()
		if heldElsewhere(t, path) {
			t.Fatalf("unlock %d: the lock is still held", i)
		}
		if n := opened(t, path); n != 1 {
			t.Fatalf("after unlock %d: %d descriptors open on the lock file, want the one kept", i, n)
		}
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if n := opened(t, path); n != 0 {
		t.Fatalf("after Close: %d descriptors open on the lock file, want none", n)
	}
	unlock, err := k.Lock(context.Background(), like) // usable after Close, as a Store is
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}

// TestKeptFollowsThePath: a lock file deleted, or replaced, between two
// locks is let go; the next lock takes the file at the path.
func TestKeptFollowsThePath(t *testing.T) {
	for _, how := range []string{"deleted", "replaced", "truncated"} {
		t.Run(how, func(t *testing.T) {
			path, k := usedOnce(t)
			before, _ := os.Stat(path)
			var err error
			switch how {
			case "deleted":
				err = os.Remove(path)
			case "replaced":
				if err = os.WriteFile(path+".new", nil, 0o644); err == nil {
					err = os.Rename(path+".new", path)
				}
			case "truncated": // a shell's 9>PATH.lock: the same file
				var f *os.File
				if f, err = os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0); err == nil {
					err = f.Close()
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			unlock, ok, err := k.TryLock(like)
			if err != nil || !ok {
				t.Fatalf("TryLock = %v, %v", ok, err)
			}
			defer unlock()
			if !heldElsewhere(t, path) {
				t.Fatal("the file at the path is not locked: the Kept locked the one it kept")
			}
			// (A deleted file's inode number may be given to the new one.)
			after, _ := os.Stat(path)
			if same := os.SameFile(before, after); how != "deleted" && same != (how == "truncated") {
				t.Fatalf("the lock file is the same as before: %v", same)
			}
			if n := opened(t, path); n != 1 {
				t.Fatalf("%d descriptors open on the lock file, want 1", n)
			}
		})
	}
}

// TestKeptExcludesWithinAProcess: a second lock through the same Kept,
// while the first holds it, opens a descriptor of its own and waits.
func TestKeptExcludesWithinAProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.json.lock")
	k := Keep(path)
	defer k.Close()
	unlock, err := k.Lock(context.Background(), like)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := k.TryLock(like); ok || err != nil {
		t.Fatalf("a second TryLock while the lock is held = %v, %v", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := k.Lock(ctx, like); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second Lock while the lock is held = %v, want ErrLocked", err)
	}
	got := make(chan func(), 1)
	go func() {
		u, err := k.Lock(context.Background(), like)
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	select {
	case <-got:
		t.Fatal("a second Lock took the lock the first holds")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	select {
	case u := <-got:
		u()
	case <-time.After(10 * time.Second):
		t.Fatal("the second Lock never got the lock")
	}
}

func TestKeepFileOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.json.journal")
	k := KeepFile(path, os.O_RDWR)
	defer k.Close()
	if _, _, _, err := k.OpenLocked(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenLocked of a missing file = %v, want fs.ErrNotExist", err)
	}
	if err := os.WriteFile(path, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, info, release, err := k.OpenLocked()
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() != 3 {
		t.Fatalf("size %d, want 3", info.Size())
	}
	if _, err := f.WriteAt([]byte("defg"), 3); err != nil {
		t.Fatal(err)
	}
	if !heldElsewhere(t, path) {
		t.Fatal("not locked")
	}
	release()
	_, info, release, err = k.OpenLocked()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if info.Size() != 7 {
		t.Fatalf("size %d after a write through the kept file, want 7 (what it is as locked)", info.Size())
	}
}

// TestKeptFollowsThePathControl: without the check that the file locked is
// the one at the path, a Kept locks the file it kept, which nobody else
// can see any more.
func TestKeptFollowsThePathControl(t *testing.T) {
	seam.NoIdentityCheck = true
	defer func() { seam.NoIdentityCheck = false }()
	path, k := usedOnce(t)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	unlock, err := k.Lock(context.Background(), like)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := os.Stat(path); err == nil && heldElsewhere(t, path) {
		t.Fatal("the control locked the file at the path: the test above proves nothing")
	}
}

// TestKeptGivingUpKeepsOneWaiter: lockers that give up while another
// process holds the lock leave one goroutine waiting in flock(2) for the
// file, not one each (each holds a thread: a program with short deadlines
// against a lock held long ran out of threads and crashed). The lock it
// gets when nobody wants it any more is let go at once.
func TestKeptGivingUpKeepsOneWaiter(t *testing.T) {
	path, k := usedOnce(t)
	holder := flockHold(t, path)
	defer holder.Close()
	before := runtime.NumGoroutine()
	for range 300 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Microsecond)
		if _, err := k.Lock(ctx, like); !errors.Is(err, ErrLocked) {
			t.Fatalf("Lock while another holds it = %v, want ErrLocked", err)
		}
		cancel()
	}
	if n := runtime.NumGoroutine() - before; n > 2 {
		t.Fatalf("300 lockers that gave up left %d more goroutines, want at most 2 (one waiting in flock(2))", n)
	}
	unix.Flock(int(holder.Fd()), unix.LOCK_UN)
	unlock, err := k.Lock(context.Background(), like) // the waiter lets it go
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	// The waiter may get the lock after this Lock did: it lets it go then.
	for deadline := time.Now().Add(10 * time.Second); heldElsewhere(t, path); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the lock is still held 10 s after the unlock: the waiter kept what nobody wanted")
		}
	}
}

// TestKeptWaiterExcludes: lockers with short deadlines and lockers that
// wait, through one Kept, against another holder that takes and lets go
// of the lock: never two inside at once, and nothing left waiting after.
func TestKeptWaiterExcludes(t *testing.T) {
	path, k := usedOnce(t)
	holder, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	before := runtime.NumGoroutine()
	var inside, entered atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the other holder
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX); err != nil {
				t.Error(err)
				return
			}
			if inside.Add(1) != 1 {
				t.Error("two inside at once")
			}
			time.Sleep(time.Millisecond)
			inside.Add(-1)
			unix.Flock(int(holder.Fd()), unix.LOCK_UN)
			time.Sleep(200 * time.Microsecond)
		}
	})
	for i := range 12 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%4)*500*time.Microsecond+100*time.Microsecond)
				if i%3 == 0 {
					cancel()
					ctx, cancel = context.WithCancel(context.Background()) // waits
				}
				unlock, err := k.Lock(ctx, like)
				cancel()
				if errors.Is(err, ErrLocked) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if inside.Add(1) != 1 {
					t.Error("two inside at once")
				}
				entered.Add(1)
				time.Sleep(100 * time.Microsecond)
				inside.Add(-1)
				unlock()
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if entered.Load() == 0 {
		t.Fatal("no locker ever got the lock")
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // a waiter finishing its flock(2)
	}
	if n := runtime.NumGoroutine() - before; n > 1 {
		t.Fatalf("%d goroutines left behind", n)
	}
	if heldElsewhere(t, path) {
		t.Fatal("the lock is still held")
	}
}
