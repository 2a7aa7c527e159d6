package sem

import "github.com/ticketd/ticket/store/lock"

// ErrNoSlot reports that no slot of a semaphore was free before the
// context's deadline, or at once (TryAcquire). It wraps lock.ErrLocked:
// errors.Is(err, lock.ErrLocked) holds for it.
var ErrNoSlot error = noSlot{}

type noSlot struct{}

func (noSlot) Error() string { return "no slot free" }
func (noSlot) Unwrap() error { return lock.ErrLocked }
