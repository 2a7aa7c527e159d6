package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/gofrs/flock"
)

// checkIdentity is whether a lock taken on a file is checked to be on the
// file still at its path (see Lock). Only the negative control of the
// tests that delete lock files turns it off.
var checkIdentity = true

// Lock takes the exclusive flock(2) lock on lockPath, creating the file with
// permissions perm if it does not exist (see createFile).
// It returns the function that releases the lock.
//
// Lock first tries without waiting. If the lock is held and ctx is already
// done, it returns ErrLocked at once: a context that is done on entry means
// "do not wait" (the command's --nowait). Otherwise it blocks in flock(2),
// costing no CPU, until it has the lock, or until ctx is done: then it
// returns ErrLocked if ctx's deadline passed, or ctx.Err() if ctx was
// cancelled. A waiter that gave up leaves one goroutine blocked in flock(2);
// if that ever gets the lock it releases it at once, without touching
// anything, so giving up is safe but not free in a long-running program.
//
// A lock file that someone deleted (or replaced) while this process waited
// for it would give this process a lock nobody else can see: a process
// that comes later creates a new file at lockPath and locks that one. So
// once it has the lock, Lock checks that the file it locked is still the
// one at lockPath, and if not, lets it go and starts again on the file that
// is there now. The lock file's contents are never read or written:
// truncating it, as a shell's 9>PATH.lock does, changes nothing.
func Lock(ctx context.Context, lockPath string, perm fs.FileMode) (unlock func(), err error) {
	for range maxMoves {
		unlock, err := lockOnce(ctx, lockPath, perm)
		if !errors.Is(err, errMoved) {
			return unlock, err
		}
		// A dangling symbolic link would send this loop round for ever:
		// the lock file is created through it (O_EXCL does not follow it),
		// and opening it then fails.
		if fi, err := os.Lstat(lockPath); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			if _, err := os.Stat(lockPath); errors.Is(err, fs.ErrNotExist) {
				return nil, ioError("lock", lockPath, fmt.Errorf("a symbolic link to a file that does not exist: %w", err))
			}
		}
	}
	return nil, ioError("lock", lockPath, fmt.Errorf("replaced or deleted %d times while this process tried to lock it", maxMoves))
}

// maxMoves bounds how often Lock starts again on a lock file that moved.
const maxMoves = 1000

// errMoved is a lock taken on a file that is no longer at its path: the
// caller tries again.
var errMoved = errors.New("the lock file was replaced or deleted")

// lockOnce is one attempt of Lock: it returns errMoved when the file it
// locked is no longer at lockPath (or was deleted before it was opened).
func lockOnce(ctx context.Context, lockPath string, perm fs.FileMode) (unlock func(), err error) {
	if err := ensureLockFile(lockPath, perm); err != nil {
		return nil, err
	}
	fl := flock.New(lockPath, flock.SetFlag(os.O_RDWR))
	release := func() { _ = fl.Unlock() } // closing the descriptor releases it even if LOCK_UN fails
	ok, err := fl.TryLock()
	if err != nil {
		return nil, lockError(lockPath, err)
	}
	if ok {
		return held(fl, lockPath, release)
	}
	if ctx.Err() != nil {
		return nil, lockCtxErr(ctx, lockPath)
	}
	got := make(chan error, 1)
	go func() { got <- fl.Lock() }()
	select {
	case err := <-got:
		if err != nil {
			return nil, lockError(lockPath, err)
		}
		return held(fl, lockPath, release)
	case <-ctx.Done():
		go func() {
			if <-got == nil {
				release()
			}
		}()
		return nil, lockCtxErr(ctx, lockPath)
	}
}

// held returns release once it has checked that fl, just locked, is still
// the file at path; otherwise it releases it and returns errMoved.
func held(fl *flock.Flock, path string, release func()) (func(), error) {
	if !checkIdentity {
		return release, nil
	}
	locked, err := fl.Stat()
	if err != nil {
		release()
		return nil, ioError("stat", path, err)
	}
	now, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !os.SameFile(locked, now)) {
		release()
		return nil, errMoved
	}
	if err != nil {
		release()
		return nil, ioError("stat", path, err)
	}
	return release, nil
}

// lockError is a failure to open or lock lockPath; a file deleted between
// its creation and its opening is errMoved, to be tried again.
func lockError(lockPath string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errMoved
	}
	return ioError("lock", lockPath, err)
}

// lockCtxErr is the error of a lock not had before ctx was done: ErrLocked
// when its deadline passed, ctx.Err() when it was cancelled.
func lockCtxErr(ctx context.Context, lockPath string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", lockPath, ErrLocked)
	}
	return ctx.Err()
}

// tryLock takes the lock on lockPath if it is free, without waiting, and
// reports whether it did.
func tryLock(lockPath string, perm fs.FileMode) (unlock func(), ok bool, err error) {
	done, cancel := context.WithCancel(context.Background())
	cancel() // a done context: Lock does not wait
	unlock, err = Lock(done, lockPath, perm)
	if errors.Is(err, context.Canceled) {
		return nil, false, nil
	}
	return unlock, err == nil, err
}

// ensureLockFile creates the lock file if it is missing (see createFile).
// An existing lock file is left as it is: it is never replaced or deleted.
func ensureLockFile(lockPath string, perm fs.FileMode) error {
	if _, err := createFile(lockPath, like{perm: perm, uid: -1}); err != nil {
		return ioError("create lock file", lockPath, err)
	}
	return nil
}

// like is the permissions and owner a sale's new files copy from its
// ticket file. A zero perm means 0666 narrowed by the umask; a negative
// uid keeps the creator as owner.
type like struct {
	perm     fs.FileMode
	uid, gid int
}

// likeFile returns what new files beside the file described by info copy.
func likeFile(info fs.FileInfo) like {
	uid, gid := owner(info)
	return like{perm: info.Mode().Perm(), uid: uid, gid: gid}
}

// createFile creates an empty file at path unless one exists, and reports
// whether it did. A non-zero l.perm is set exactly, past the umask, so that
// whoever may write the ticket file may also lock and journal; zero means
// 0666 narrowed by the umask, as for any new file. Run as root, it gives the
// file l's owner, so that root buying from a user's sale does not lock the
// user out of it.
func createFile(path string, l like) (created bool, err error) {
	mode := l.perm
	if mode == 0 {
		mode = 0o666
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, mode)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if l.perm != 0 {
		err = f.Chmod(l.perm)
	}
	if err == nil && l.uid >= 0 && os.Geteuid() == 0 {
		err = f.Chown(l.uid, l.gid)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return true, err
}
