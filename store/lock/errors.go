package lock

import "errors"

// ErrLocked reports that a lock was not acquired: another process holds
// it, and the context's deadline passed (Lock) or the caller would not
// wait (TryLock callers that want an error). It is not an I/O error.
var ErrLocked = errors.New("lock is held by another process")
