package group

import "errors"

// ErrAlone reports a request that group commit did not serve, with nothing
// bought: the fast path is unavailable (not Linux, no region, every slot
// busy, a buyer name too long for a slot), the sale's journal was replaced
// since the request was posted, or the leader's commit failed. The caller
// buys alone, taking the lock itself, and learns why if that fails too.
var ErrAlone = errors.New("not served by group commit")

// ErrUnsettled reports a request whose outcome its buyer cannot learn: a
// leader took it, and its sale may stand (commits kept failing, or another
// process dropped the request). It must not be retried as if nothing had
// been bought.
var ErrUnsettled = errors.New("the request's outcome is unknown")

// errStale is a leader's region that no longer serves the sale's journal:
// its requests are bought alone.
var errStale = errors.New("the journal was replaced since these requests were posted")
