package lock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLockContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.json.lock")
	unlock, err := Lock(context.Background(), path, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o640 {
		t.Fatalf("lock file mode = %v, %v; want 0640 exactly, past the umask", info.Mode(), err)
	}

	t.Run("done on entry means try once", func(t *testing.T) {
		ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
		defer cancel()
		if _, err := Lock(ctx, path, 0); !errors.Is(err, ErrLocked) {
			t.Fatalf("Lock = %v, want ErrLocked", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		start := time.Now() // before the deadline is set: it counts from there
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := Lock(ctx, path, 0)
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("Lock = %v, want ErrLocked", err)
		}
		if waited := time.Since(start); waited < 50*time.Millisecond {
			t.Errorf("gave up after %v, before the 50ms deadline", waited)
		}
	})
	t.Run("cancel is not ErrLocked", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, err := Lock(ctx, path, 0); !errors.Is(err, context.Canceled) || errors.Is(err, ErrLocked) {
			t.Fatalf("Lock = %v, want context.Canceled", err)
		}
	})
	t.Run("a waiter gets the lock when it is released", func(t *testing.T) {
		got := make(chan error, 1)
		go func() {
			u, err := Lock(context.Background(), path, 0)
			if err == nil {
				u()
			}
			got <- err
		}()
		time.Sleep(20 * time.Millisecond)
		unlock()
		if err := <-got; err != nil {
			t.Fatalf("waiter: %v", err)
		}
	})
	t.Run("a waiter that gave up does not keep the lock", func(t *testing.T) {
		u, err := Lock(context.Background(), path, 0)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if _, err := Lock(ctx, path, 0); !errors.Is(err, ErrLocked) {
			t.Fatalf("Lock = %v, want ErrLocked", err)
		}
		u() // the abandoned waiter now takes the lock and must let it go
		ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel2()
		u2, err := Lock(ctx2, path, 0)
		if err != nil {
			t.Fatalf("lock after an abandoned waiter: %v", err)
		}
		u2()
	})
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the lock file must never be removed: %v", err)
	}
}
