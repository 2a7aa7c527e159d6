package lock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/store/internal/seam"
	"golang.org/x/sys/unix"
)

// Kept is a file locked again and again by one process (the buyers of
// ticket bench, a program that sells through one store.Store), kept open
// between the times it is locked: a lock then costs a flock(2) and the
// check that the file is still the one at its path (an fstat once, a stat
// each time), instead of an open, an fstat and a close as well. The
// guarantees are Lock's and OpenLocked's: a file deleted or replaced is let
// go and the one at the path now is opened and locked; a truncated one is
// the same file.
//
// One lock at a time uses the kept descriptor (flock(2) locks belong to
// an open file, so two users of one descriptor would both "have" the
// lock); a lock taken while it is in use opens a descriptor of its own, as
// Lock does. Kept is safe for concurrent use. Close closes the kept
// descriptor; one never closed is closed when the garbage collector finds
// the Kept unreachable, as any os.File is.
//
// Kept calls flock(2) itself: gofrs/flock, which Lock uses, closes its
// descriptor at every unlock.
type Kept struct {
	path     string
	lockFile bool // a lock file, created when missing (see Keep); else the file must exist (see KeepFile)
	flag     int  // KeepFile's open flag

	mu     sync.Mutex
	waiter *waiter     // waiting in flock(2) for lockers that may give up; nil when none
	f      *os.File    // open and unlocked; nil while in use, before the first lock, after Close
	info   fs.FileInfo // f as it was opened: its identity
	closed bool
}

// Keep returns the lock file at path, kept open between locks; a missing
// one is created by the lock that finds it missing (see Lock).
func Keep(path string) *Kept { return &Kept{path: path, lockFile: true} }

// KeepFile returns the existing file at path, opened with flag and kept
// open between locks (see OpenLocked).
func KeepFile(path string, flag int) *Kept { return &Kept{path: path, flag: flag} }

// Lock is LockLike through the kept descriptor: it waits for the lock as
// long as ctx allows, and creates a missing lock file like l.
func (k *Kept) Lock(ctx context.Context, l files.Like) (unlock func(), err error) {
	_, _, unlock, err = k.lock(ctx, l)
	return unlock, err
}

// TryLock is TryLockLike through the kept descriptor.
func (k *Kept) TryLock(l files.Like) (unlock func(), ok bool, err error) {
	done, cancel := context.WithCancel(context.Background())
	cancel() // a done context: lock does not wait
	_, _, unlock, err = k.lock(done, l)
	if errors.Is(err, context.Canceled) {
		return nil, false, nil
	}
	return unlock, err == nil, err
}

// OpenLocked is the package's OpenLocked through the kept descriptor: it
// returns the file, what it is now (its size as locked), and the function
// that releases the lock, after which the file is no longer the caller's.
func (k *Kept) OpenLocked() (*os.File, fs.FileInfo, func(), error) {
	return k.lock(context.Background(), files.Like{})
}

// Close closes the kept descriptor. A lock held now is released when its
// unlock function is called, as before; its descriptor is closed then.
func (k *Kept) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	if k.f == nil {
		return nil
	}
	err := k.f.Close()
	k.f = nil
	return err
}

// lock takes the lock, through the kept descriptor if it is free, and
// returns the file, what it is now (fstat after the lock: for a lock file,
// what it was when opened) and the unlock function.
func (k *Kept) lock(ctx context.Context, l files.Like) (f *os.File, now fs.FileInfo, unlock func(), err error) {
	_, err = retry(k.path, func() (func(), error) {
		var err error
		f, now, unlock, err = k.lockOnce(ctx, l)
		return unlock, err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return f, now, unlock, nil
}

// lockOnce is one attempt of lock: errMoved when the file it locked is no
// longer at its path (it lets it go), or when it must try again.
func (k *Kept) lockOnce(ctx context.Context, l files.Like) (*os.File, fs.FileInfo, func(), error) {
	f, info, err := k.take(l)
	if err != nil {
		return nil, nil, nil, err
	}
	if f, info, err = k.flock(ctx, f, info); err != nil {
		return nil, nil, nil, err
	}
	fd := int(f.Fd())
	now := info
	if info == nil || !k.lockFile { // opened now, or a file locked to be written: its size as locked
		if now, err = f.Stat(); err != nil {
			_ = unix.Flock(fd, unix.LOCK_UN)
			f.Close()
			return nil, nil, nil, files.Error("stat", k.path, err)
		}
		if info == nil {
			info = now
		}
	}
	release := func() {
		_ = unix.Flock(fd, unix.LOCK_UN) // closing the descriptor releases it even if this fails
		k.put(f, info)
	}
	if seam.NoIdentityCheck {
		return f, now, release, nil
	}
	if at, err := k.atPath(info); err != nil {
		release()
		return nil, nil, nil, err
	} else if !at {
		// Not the file at the path any more: let it go, for good.
		_ = unix.Flock(fd, unix.LOCK_UN)
		f.Close()
		return nil, nil, nil, errMoved
	}
	return f, now, release, nil
}

// atPath reports whether the file described by info is still at the path
// (a missing path is not), and the error of a stat that could not tell.
func (k *Kept) atPath(info fs.FileInfo) (bool, error) {
	at, err := os.Stat(k.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, files.Error("stat", k.path, err)
	}
	return os.SameFile(info, at), nil
}

// flock takes the exclusive lock of f (whose identity info is, or nil),
// waiting as long as ctx allows, and returns the file locked: f, or the
// descriptor that was already waiting for this file's lock on behalf of
// every locker of the Kept (see waiter). On error it has disposed of f;
// errMoved (f is no longer at the path) and errAgain (another locker took
// what the waiter got) ask for another attempt.
func (k *Kept) flock(ctx context.Context, f *os.File, info fs.FileInfo) (*os.File, fs.FileInfo, error) {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return f, info, nil
	}
	if err != unix.EWOULDBLOCK {
		f.Close()
		return nil, nil, files.Error("lock", k.path, err)
	}
	if ctx.Err() != nil {
		k.put(f, info) // not locked: kept as it was
		return nil, nil, WaitError(ctx, k.path)
	}
	// About to wait: for the file at the path, not for one someone deleted
	// or replaced since it was kept, which a process that opened it before
	// may hold for long (flock(1) running a script).
	if info == nil {
		if info, err = f.Stat(); err != nil {
			f.Close()
			return nil, nil, files.Error("stat", k.path, err)
		}
	}
	if !seam.NoIdentityCheck {
		if at, _ := k.atPath(info); !at { // a stat that fails is the next attempt's to report
			f.Close()
			return nil, nil, errMoved
		}
	}
	if ctx.Done() == nil { // a wait nothing ends: in this goroutine
		if err := k.flockWait(int(f.Fd())); err != nil {
			f.Close()
			return nil, nil, err
		}
		return f, info, nil
	}
	k.mu.Lock()
	w := k.waiter
	if w == nil || !os.SameFile(w.info, info) {
		// None, or one waiting for a file no longer at the path: this
		// file's waiter from now on (the old one ends when its flock(2)
		// does, its lockers then trying again).
		w = &waiter{f: f, info: info, done: make(chan struct{})}
		k.waiter = w
		f = nil
		go k.wait(w)
	}
	w.users++
	k.mu.Unlock()
	if f != nil {
		k.put(f, info) // the waiter's descriptor waits for this locker too
	}
	select {
	case <-w.done:
	case <-ctx.Done():
	}
	k.mu.Lock()
	w.users--
	take := w.finished && !w.taken && (ctx.Err() == nil || w.users == 0)
	if take {
		w.taken = true
	}
	k.mu.Unlock()
	switch {
	case take && w.err != nil:
		w.f.Close()
		return nil, nil, w.err
	case take && ctx.Err() != nil: // got it just as this locker gave up, and nobody else waits
		_ = unix.Flock(int(w.f.Fd()), unix.LOCK_UN)
		k.put(w.f, w.info)
	case take:
		return w.f, w.info, nil
	}
	if ctx.Err() != nil {
		return nil, nil, WaitError(ctx, k.path)
	}
	return nil, nil, errAgain // another locker took the lock the waiter got
}

// errAgain is a lock another locker of the Kept took first: try again.
// Unlike errMoved, retry does not count it (someone made progress).
var errAgain = errors.New("taken by another locker first")

// A waiter is the one goroutine waiting in flock(2) for a Kept's file on
// behalf of the lockers that wait with a context that can end: each of
// them may give up, and a goroutine blocked in flock(2) cannot be
// stopped, so one per locker would leave one thread behind per give-up (a
// program with short deadlines against a lock held long ran out of
// threads). The first locker to see it finished takes its lock; if none
// is left, the waiter lets the lock go at once.
type waiter struct {
	f    *os.File
	info fs.FileInfo
	done chan struct{} // closed when flock(2) returned

	// Under Kept.mu:
	users    int   // lockers waiting on it now
	finished bool  // flock(2) returned, with err
	err      error //
	taken    bool  // a locker took it, or it was let go
}

// wait is w's goroutine.
func (k *Kept) wait(w *waiter) {
	err := k.flockWait(int(w.f.Fd()))
	k.mu.Lock()
	w.finished, w.err = true, err
	if k.waiter == w {
		k.waiter = nil
	}
	close(w.done)
	abandoned := w.users == 0 && !w.taken
	if abandoned {
		w.taken = true
	}
	k.mu.Unlock()
	switch {
	case abandoned && err == nil:
		_ = unix.Flock(int(w.f.Fd()), unix.LOCK_UN)
		k.put(w.f, w.info)
	case abandoned:
		w.f.Close()
	}
}

// flockWait waits in flock(2) for fd's exclusive lock.
func (k *Kept) flockWait(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			if err != nil {
				return files.Error("lock", k.path, err)
			}
			return nil
		}
	}
}

// take returns the kept descriptor with its identity, or, while it is in
// use (or before the first lock), one opened now, without.
func (k *Kept) take(l files.Like) (*os.File, fs.FileInfo, error) {
	k.mu.Lock()
	f, info := k.f, k.info
	if !seam.SharedKept {
		k.f, k.info = nil, nil
	}
	k.mu.Unlock()
	if f != nil {
		return f, info, nil
	}
	f, err := k.open(l)
	return f, nil, err // its identity is taken once it is locked
}

// put keeps f, unlocked, for the next lock; it closes f when another is
// kept already or the Kept was closed.
func (k *Kept) put(f *os.File, info fs.FileInfo) {
	k.mu.Lock()
	if (k.f == nil || seam.SharedKept && k.f == f) && !k.closed {
		k.f, k.info = f, info
		f = nil
	}
	k.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

// open opens the file: a lock file read-write (read-only for a user who
// may only read the sale), created like l if missing; another file with
// KeepFile's flag, a missing one being an error wrapping fs.ErrNotExist
// for the caller to create.
func (k *Kept) open(l files.Like) (*os.File, error) {
	if !k.lockFile {
		// A FIFO or a terminal put at the path neither blocks the open
		// nor becomes this process's controlling terminal: the caller
		// refuses what is not a regular file.
		return files.Open(k.path, k.flag|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	}
	f, err := files.Open(k.path, os.O_RDWR|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		// Created here, once: a lock file that exists is opened as it is.
		if _, err := files.Create(k.path, l); err != nil {
			return nil, files.Error("create lock file", k.path, err)
		}
		f, err = files.Open(k.path, os.O_RDWR|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	}
	if errors.Is(err, fs.ErrPermission) {
		// A user who may only read the sale (show, verify) locks it all
		// the same: flock(2) takes a descriptor opened to read.
		f, err = files.Open(k.path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	}
	if err != nil {
		return nil, lockError(k.path, err)
	}
	return f, nil
}
