package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/gofrs/flock"
)

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
func Lock(ctx context.Context, lockPath string, perm fs.FileMode) (unlock func(), err error) {
	if err := ensureLockFile(lockPath, perm); err != nil {
		return nil, err
	}
	fl := flock.New(lockPath, flock.SetFlag(os.O_RDWR))
	release := func() {
		_ = fl.Unlock() // closing the descriptor releases it even if LOCK_UN fails
		groupNotify(lockPath)
	}
	ok, err := fl.TryLock()
	if err != nil {
		return nil, ioError("lock", lockPath, err)
	}
	if ok {
		return release, nil
	}
	if ctx.Err() != nil {
		return nil, lockCtxErr(ctx, lockPath)
	}
	got := make(chan error, 1)
	go func() { got <- fl.Lock() }()
	select {
	case err := <-got:
		if err != nil {
			return nil, ioError("lock", lockPath, err)
		}
		return release, nil
	case <-ctx.Done():
		go func() {
			if <-got == nil {
				release()
			}
		}()
		return nil, lockCtxErr(ctx, lockPath)
	}
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
	if err := ensureLockFile(lockPath, perm); err != nil {
		return nil, false, err
	}
	fl := flock.New(lockPath, flock.SetFlag(os.O_RDWR))
	if ok, err = fl.TryLock(); err != nil || !ok {
		if err != nil {
			err = ioError("lock", lockPath, err)
		}
		return nil, false, err
	}
	return func() { _ = fl.Unlock() }, true, nil
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
