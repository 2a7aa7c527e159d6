package lock

import "errors"

// ErrLocked reports a lock not acquired because another process holds it:
// the wait's deadline passed (see Lock and WaitError). It is not an I/O
// error. TryLock reports a lock held by returning false, not an error.
var ErrLocked = errors.New("lock is held by another process")

// errMoved is a lock taken on a file that is no longer at its path: the
// caller tries again.
var errMoved = errors.New("the lock file was replaced or deleted")
