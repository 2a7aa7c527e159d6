// Package store keeps a ticket sale on disk and is the only package that
// touches its files. For a sale at PATH they are:
//
//	PATH          the ticket file, JSON, replaced atomically on every change
//	PATH.lock     the lock file: an flock(2) exclusive lock on it guards the
//	              other three; it is created once and never replaced or deleted
//	PATH.journal  the sales journal, one JSON line per committed sale
//	PATH.tmp      the next version of PATH while it is being written
//
// If PATH is a symbolic link, these names are taken beside the file it points
// to, so that every path to one sale shares one lock.
//
// # How a buy is committed
//
// Buy takes the lock, re-reads the ticket file under it, applies the buy rule
// (ticket.State.Take), appends the sale to the journal and fsyncs it, writes
// the new version to PATH.tmp, fsyncs it, renames it over PATH and fsyncs the
// directory, then releases the lock. The rename is the commit point. A
// process killed before it leaves at most one uncommitted journal line and a
// stale PATH.tmp; the next lock holder cuts the line and removes PATH.tmp,
// saying so through Options.Warn, whether or not it then sells anything.
// A buy that fails before the rename takes its own journal line back.
// Readers need no lock: rename(2) replaces the file in one step, so they
// see one whole version or the next.
//
// # Why a separate lock file
//
// A lock on PATH itself would be lost at the first rename (waiters would hold
// the old inode), and deleting a lock file on release lets two processes hold
// "the" lock at once. So PATH.lock is opened read-write (NFS needs that for
// an exclusive lock), created with PATH's permissions, and never removed. A
// shell script takes the same lock with flock(1):
//
//	flock PATH.lock sh -c '...'
//
// # Redis
//
// The same sale can be kept in a Redis server instead (OpenRedis, or
// OpenSpec with a redis:// URL), for buyers on many machines. Both backends
// satisfy Backend. A Redis buy takes no lock: one Lua script checks the
// request id, takes the tickets and appends the sale to a stream in one
// atomic step; see Redis for its keys and Durability for what the server
// promises. Errors reaching the server wrap ErrUnreachable.
//
// # Limits
//
// flock(2) works between processes of one machine on a local filesystem.
// On NFS, Linux emulates it with POSIX byte-range locks, which need a working
// lock manager, and rename is atomic only for clients of the same server;
// over SMB and most FUSE filesystems there is no guarantee. Durability
// assumes fsync(2) reaches stable storage, which a disk with a volatile write
// cache that ignores flushes does not ensure.
package store
