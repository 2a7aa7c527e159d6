// Package lock takes the exclusive flock(2) lock on a lock file: a file
// whose contents are never read or written, and which guards other files
// (a sale's ticket file and journal, a semaphore's slot). It waits for the
// lock as long as a context allows, or tries once (TryLock), and it makes
// sure that the file it locked is still the one at the path.
//
// That last check is what makes a deleted lock file harmless. A process
// that locked a file someone deleted (or replaced) while it waited would
// hold a lock nobody else can see: a process that comes later creates a
// new file at the path and locks that one. So once it has the lock, Lock
// checks that the file it locked is still at the path, and if not, lets it
// go and starts again on the file that is there now. Truncating the file,
// as a shell's 9>PATH.lock does, changes nothing.
//
// flock(2) locks belong to an open file: two Locks in one process exclude
// each other as two processes do. The race detector does not see them; the
// tests prove exclusion with processes.
package lock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/gofrs/flock"
	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/store/internal/seam"
)

// Lock takes the exclusive lock on the file at path, creating it with
// permissions perm (exactly, past the umask; 0 for 0666 narrowed by the
// umask) if it does not exist. It returns the function that releases the
// lock.
//
// It blocks in flock(2), costing no CPU, until it has the lock or ctx is
// done: then it returns an error wrapping ErrLocked if ctx's deadline
// passed, ctx.Err() if ctx was cancelled (see WaitError). A ctx already
// done on entry gives up at once if the lock is held. A waiter that gave
// up leaves one goroutine blocked in flock(2); if that ever gets the lock
// it releases it at once, without touching anything, so giving up is safe
// but not free in a long-running program.
func Lock(ctx context.Context, path string, perm fs.FileMode) (unlock func(), err error) {
	return LockLike(ctx, path, files.Like{Perm: perm, UID: -1})
}

// LockLike is Lock creating a missing lock file like l: with l.Perm, and,
// run as root, l's owner. Every creation goes through it, also the one
// after another process deleted the lock file while this one waited, so
// that root locking a user's sale never leaves a lock file of root's
// that locks the user and its peers out.
func LockLike(ctx context.Context, path string, l files.Like) (unlock func(), err error) {
	return retry(path, func() (func(), error) { return lockOnce(ctx, path, l) })
}

// TryLock takes the exclusive lock on the file at path if no other process
// holds it, creating the file as Lock does, and reports whether it did.
func TryLock(path string, perm fs.FileMode) (unlock func(), ok bool, err error) {
	return TryLockLike(path, files.Like{Perm: perm, UID: -1})
}

// TryLockLike is TryLock creating a missing lock file like l (see LockLike).
func TryLockLike(path string, l files.Like) (unlock func(), ok bool, err error) {
	done, cancel := context.WithCancel(context.Background())
	cancel() // a done context: lockOnce does not wait
	unlock, err = LockLike(done, path, l)
	if errors.Is(err, context.Canceled) {
		return nil, false, nil
	}
	return unlock, err == nil, err
}

// OpenLocked opens the existing file at path with flag (os.O_RDWR, say,
// with os.O_APPEND), takes its exclusive lock, waiting as long as it
// takes, and checks, as Lock does, that the file it locked is still the
// one at path. It returns the file and what it was when locked. The lock
// is released when the file is closed. A missing file is an error wrapping
// fs.ErrNotExist, which the caller may create and try again.
func OpenLocked(path string, flag int) (*os.File, fs.FileInfo, error) {
	k := KeepFile(path, flag)
	k.Close() // nothing is kept: the file is the caller's, and closing it unlocks it
	f, info, _, err := k.OpenLocked()
	return f, info, err
}

// WaitError is the error of a lock not had at path before ctx was done:
// one wrapping ErrLocked when ctx's deadline passed, ctx.Err() when it was
// cancelled. Callers that wait for a lock on behalf of others return it
// too.
func WaitError(ctx context.Context, path string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", path, ErrLocked)
	}
	return ctx.Err()
}

// maxMoves bounds how often a lock starts again on a file that moved.
const maxMoves = 1000

// retry runs once, one attempt at the lock on path, until it does not
// report errMoved, at most maxMoves times.
func retry(path string, once func() (func(), error)) (func(), error) {
	for moves := 0; moves < maxMoves; {
		unlock, err := once()
		if errors.Is(err, errAgain) {
			continue // not a move: another locker of this process went first
		}
		if !errors.Is(err, errMoved) {
			return unlock, err
		}
		moves++
		// A dangling symbolic link would send this loop round for ever:
		// the lock file is created through it (O_EXCL does not follow it),
		// and opening it then fails.
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				return nil, files.Error("lock", path, fmt.Errorf("a symbolic link to a file that does not exist: %w", err))
			}
		}
	}
	return nil, files.Error("lock", path, fmt.Errorf("replaced or deleted %d times while this process tried to lock it", maxMoves))
}

// lockOnce is one attempt of Lock: it returns errMoved when the file it
// locked is no longer at path (or was deleted before it was opened).
func lockOnce(ctx context.Context, path string, l files.Like) (unlock func(), err error) {
	// O_NONBLOCK changes nothing of flock(2), and spares os.OpenFile the
	// four fcntl calls it makes to try a regular file with the poller
	// (and a FIFO put at path from blocking the open).
	fl := flock.New(path, flock.SetFlag(os.O_RDWR|syscall.O_NONBLOCK|syscall.O_NOCTTY))
	ok, err := fl.TryLock()
	if errors.Is(err, fs.ErrNotExist) {
		// Created here, once: a lock file that exists is opened as it is.
		if _, err := files.Create(path, l); err != nil {
			return nil, files.Error("create lock file", path, err)
		}
		ok, err = fl.TryLock()
	}
	if errors.Is(err, fs.ErrPermission) {
		// A user who may only read the sale (ticket show, verify) locks
		// it all the same: flock(2) takes a descriptor opened to read.
		fl = flock.New(path, flock.SetFlag(os.O_RDONLY|syscall.O_NONBLOCK))
		ok, err = fl.TryLock()
	}
	release := func() { _ = fl.Unlock() } // closing the descriptor releases it even if LOCK_UN fails
	if err != nil {
		return nil, lockError(path, err)
	}
	if ok {
		return held(path, fl.Stat, release)
	}
	if ctx.Err() != nil {
		return nil, WaitError(ctx, path)
	}
	got := make(chan error, 1)
	go func() { got <- fl.Lock() }()
	select {
	case err := <-got:
		if err != nil {
			return nil, lockError(path, err)
		}
		return held(path, fl.Stat, release)
	case <-ctx.Done():
		go func() {
			if <-got == nil {
				release()
			}
		}()
		return nil, WaitError(ctx, path)
	}
}

// held returns release once it has checked that the file just locked
// (stat describes it) is still the file at path; otherwise it releases it
// and returns errMoved.
func held(path string, stat func() (fs.FileInfo, error), release func()) (func(), error) {
	if seam.NoIdentityCheck {
		return release, nil
	}
	locked, err := stat()
	if err != nil {
		release()
		return nil, files.Error("stat", path, err)
	}
	now, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !os.SameFile(locked, now)) {
		release()
		return nil, errMoved
	}
	if err != nil {
		release()
		return nil, files.Error("stat", path, err)
	}
	return release, nil
}

// lockError is a failure to open or lock path; a file deleted between its
// creation and its opening is errMoved, to be tried again.
func lockError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errMoved
	}
	return files.Error("lock", path, err)
}
