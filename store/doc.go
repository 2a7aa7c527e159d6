// Package store keeps a ticket sale on disk: the transaction that reads,
// decides and commits a buy, the journal, recovery after a crash, Verify
// and Repair. It also holds what every backend shares: the Backend
// interface, its result types and its sentinel errors. For a sale at PATH
// the files are:
//
//	PATH          the ticket file, JSON, replaced atomically on every change
//	PATH.lock     the lock file: an flock(2) exclusive lock on it guards the
//	              other three; it is created once and never replaced or deleted
//	PATH.journal  the sales journal, one JSON line per committed sale
//	PATH.spare    an older version of PATH, which the next commit writes
//	              over and swaps in, so that a commit makes no new file;
//	              never read; deleting it costs the next commit a new file
//	PATH.tmp      the next version of PATH while Init, Restore or Repair
//	              writes it (or a buy, when PATH.spare cannot be
//	              written over or removed)
//	PATH.holds    the open holds, by number and by expiry: an index
//	              derived from the journal (package store/holds)
//	PATH.holders  in a sale with a per-buyer limit, each buyer's holding:
//	              an index derived from the journal (package
//	              store/holders)
//
// Both indexes are rebuilt from the journal whenever missing or in doubt,
// so that no buy, hold or confirm reads the journal however long it is.
//
// If PATH is a symbolic link, these names are taken beside the file it points
// to, so that every path to one sale shares one lock.
//
// # How a buy is committed
//
// Buy takes the lock (package store/lock), re-reads the ticket file under
// it, applies the buy rule
// (ticket.State.Take), appends the sale to the journal and fdatasyncs it: that
// append is the commit point, and a whole line in the journal is a committed
// sale. Then it writes the new version over PATH.spare and swaps the two
// in one step (renameat2 RENAME_EXCHANGE), without fsync (the journal is
// what must survive a power cut), and releases the lock: the version it
// swapped out is the next commit's spare. One fsync per buy, as in SQLite's
// WAL mode, and no new inode: on ext4, making and freeing one costs more
// than the fdatasync. The spare is written over only when no other process
// has it open (a reader that opened it when it was PATH keeps its version
// whole): see reuseSpare; otherwise a new file takes its place.
//
// A process killed after its append but before the swap leaves a sale the
// ticket file does not show yet, and its version in PATH.spare; one killed in the
// middle of its append leaves an unfinished line, which nobody was told about.
// The next lock holder writes the first into the ticket file (rolling it
// forward: each such sale must follow from the one before), cuts the second
// and removes a stale PATH.tmp, saying so through Options.Warn, whether or not it then
// sells anything. (Whether a line beyond the ticket file was written in this
// boot of the machine, by a writer that died before it told anyone, or
// before a restart, when it may have been confirmed, the journal's
// user.ticket.boot extended attribute says.) Read does the same
// roll-forward in memory, without the lock,
// so readers never see a committed sale missing. A buy that fails after its
// append (the ticket file cannot be replaced) takes its line back, fsynced, so
// that a failed buy sells nothing. Readers need no lock: the swap replaces
// the file in one step, so they see one whole version or the next.
//
// Buyers that find the lock held are committed together: see package
// store/group, which the transaction plugs in. A batch is committed exactly
// as one buy is, with one journal append and one fdatasync for all its
// sales.
//
// The ticket file's "count" is the truth: any process that takes the lock,
// re-reads the file and replaces it atomically is a buyer. A count that
// differs from what the journal says is recorded as tickets taken (or
// added) outside ticket by the next writer (ticket.Reconcile).
//
// Since the ticket file is not fsynced, a power cut may bring it back as
// an older version (the next writer rolls it forward from the journal),
// or, where its length changed shortly before or on file systems that
// write data and metadata in any order, empty or garbled; the sales
// journal still holds every sale made, and the ticket file is rebuilt from
// it (Store.Repair).
// Init and Restore, which have no journal to rebuild
// from, write the ticket file with fsyncs of the file and the directory.
// The library's errors say what is wrong and wrap the sentinels of
// errors.go; they name no command: what to type next is the caller's.
//
// # Holds, confirms, returns and restocks
//
// Hold, Confirm, Release, Return, Restock and SetLimit are transactions
// like a buy's, one record each, without group commit (a buy in a sale
// with open holds or a limit is made alone too). Every transaction first
// releases, as lapsed, the holds that expired, in the same journal append
// as its own records; Read and Verify count them as released without
// writing. See package ticket for what the ticket file keeps of them.
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
// A Store keeps PATH.lock and PATH.journal open between its transactions
// (see lock.Kept), so that a process that buys again and again does not
// open and close them each time; each lock still checks that the file it
// locked is the one at the path, and opens the new one if someone deleted
// or replaced it. Close closes them.
//
// # Other backends
//
// The same sale can be kept in a Redis server instead, for buyers on many
// machines: package store/redis implements Backend there. A program that
// imports only this package does not link a Redis client.
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
