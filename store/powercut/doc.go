// Package powercut is a test-only file system that forgets what was not
// synced: tests mount it, run real processes on it, cut the power and
// look at what a machine would find after rebooting. Nothing but tests may
// import it (a test of the package checks that cmd/ticket does not).
//
// # Use
//
//	m := powercut.New(t, powercut.Options{Variant: powercut.LoseAll})
//	// Set the scene in m.Dir() (ticket init ...), then make it durable
//	// and remember it:
//	m.Checkpoint()
//	for n := 1; ; n++ {
//		m.Rewind()   // back to the checkpoint: a fresh mount, 0 operations
//		m.CutAt(n)   // the power fails at the nth operation from now
//		p, _ := m.Start(exec.Command(bin, "buy", "-f", m.Path("t.json")))
//		code := p.ExitCode() // -1: the power cut killed it
//		cut := m.IsCut()
//		r := m.Remount()     // cut (if not yet), unmount, mount what survived
//		// Check m.Dir(): if code == 0, the sale must be there; on a
//		// failure, print r (what the cut lost and kept) and
//		// r.LogTail(20) (the operations before it).
//		if !cut {
//			break // the work completed before the nth operation
//		}
//	}
//
// Or cut at a named operation: m.CutOn(powercut.Trigger{Op: "fdatasync",
// Path: "*.journal", Nth: 2}), or now: m.Cut().
//
// New mounts an empty file system on a new temporary directory and
// unmounts it when the test ends, whatever the outcome; where FUSE cannot
// be mounted (no /dev/fuse, not root) it skips the test saying which is
// missing. The file system is served by a process of its own: the test
// binary run again, which this package's init function turns into the
// server before any test runs. So the test process can start programs
// with their directory on the mount (os/exec's vfork child would
// otherwise wait for a server that a garbage collection in the same
// process can stop: a deadlock) and use files on it freely, and a test
// process that dies leaves no mount behind: the server unmounts when its
// control socket closes. Test binaries built with -race sleep a second
// as they exit unless GORACE says otherwise; the server is started with
// NoRaceExitDelay, and tests that start many short processes of their
// own test binary should add it to their environment too. The FUSE parts
// are Linux only: elsewhere the package has only its model, and tests
// that mount must be built for Linux.
//
// # The model
//
// The file system lives in memory (github.com/hanwen/go-fuse/v2, raw
// API); it needs no backing directory and is deterministic: the same
// operations in the same order give the same state (times aside) and,
// with the same seed, the same power cuts. Each file and directory has two layers:
//
//   - the current state, which processes see and every operation changes;
//   - the durable state: a file's content (data and size) as of its last
//     fsync or fdatasync (empty if it had none), a directory's entries
//     (creations, renames, hard links, removals) as of its last fsync
//     (FUSE's FSYNCDIR), and an inode's mode and owner as of its last
//     fsync (not fdatasync) or the last directory fsync that made a name
//     of it durable, else as it was created.
//
// An fsync of a file does not make its name durable, nor an fsync of a
// directory its files' data: that is the POSIX contract, and what careful
// programs (ticket among them) do both for. sync(2) and syncfs(2) make
// nothing durable (FUSE does not pass them on); SyncAll does, for a
// test's set-up.
//
// Supported: lookup, create and open (O_EXCL, O_APPEND, O_TRUNC), read,
// write and pwrite, ftruncate and truncate, fallocate (mode 0,
// FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE), fsync,
// fdatasync, fsync of a directory, mkdir, rmdir, unlink, rename (over an
// existing file too, RENAME_NOREPLACE, RENAME_EXCHANGE), link, symlink,
// readlink, readdir, stat, chmod, chown, utimes and statfs (the capacity
// of Options; writes past it fail with ENOSPC). flock(2) is the kernel's
// local emulation (the file system does not ask for lock requests), which
// excludes between processes on the mount as on a local disk; so are
// fcntl locks. O_TMPFILE fails with EOPNOTSUPP, as on file systems
// without it (ticket then makes a named temporary file); so do extended
// attributes, mknod of anything but a regular file (EPERM) and
// copy_file_range (callers fall back to read and write). Times are kept
// but not modelled: reads do not change atime, and a power cut keeps the
// times of the attributes it keeps. Shared writable mmap works as FUSE
// does it: stores reach the file system when the kernel writes the pages
// back (or at msync), as writes of pid 0. statfs reports FUSE's type
// (0x65735546), not ext4's.
//
// # Counted operations and the power cut
//
// The operations that change the state or sync are counted, from 1 on
// each mount, and logged (Op): write, truncate, fallocate, chmod, chown,
// utimes, create, mkdir, symlink, link, unlink, rmdir, rename, fsync,
// fdatasync, fsyncdir, whether they succeed or not. Reads, lookups,
// opens, closes and stat are not counted. Op.Pid is the calling
// thread's id (the process's for a single-threaded one), as FUSE passes
// it. The power is cut
//
//   - on demand (Mount.Cut, or Mount.Remount),
//   - at the nth counted operation from now (Mount.CutAt), or
//   - at a named operation on a named file (Mount.CutOn with a Trigger:
//     "the second fdatasync of *.journal"), before it takes effect or,
//     with Trigger.After, just after (a sync that reached the disk but
//     whose caller never heard of it).
//
// At the cut, under the file system's lock (so that no operation runs
// meanwhile), the processes started with Mount.Start are killed with
// SIGKILL, as a real power cut kills them; any other process the test
// started (directly or not) is killed when it next asks the mount for
// anything. So no process of the test but the test's own sees an
// operation fail: the operation at which the power is cut, and every
// later one, fails with EIO, as if the disk were gone, and only the test
// process lives to see it. Remount then ends the mount (a forced lazy
// unmount, which aborts the FUSE connection: processes still holding
// files on it get ENOTCONN) and mounts on the same directory a new file
// system made of what was durable plus what the variant keeps of the
// rest. It returns a Report: what was lost and what was kept, and the
// operations before the cut, for the test's messages.
//
// # Variants
//
// A power cut keeps everything durable; what it keeps of the rest is the
// Variant, in two independent halves, each drawn at random where it says
// "at random", from Options.Seed (logged when New draws it; set
// TICKET_POWERCUT_SEED to repeat). The seed repeats the cut only for the
// same operations in the same order: concurrent processes may order
// theirs differently from run to run, and the log (Mount.Log) says what
// happened.
//
// File data changed since the file's last fsync or fdatasync (DataLoss):
//
//   - DataLost: all lost, the content is the durable one.
//   - DataPrefix: the first k of the changes (write calls as the kernel
//     sent them, at most 128 KiB each; truncations; allocations), k
//     drawn from 0 to all. This is an append on ext4 data=ordered or xfs,
//     whose on-disk size only grows past data already written, and a
//     btrfs transaction commit.
//   - DataBlocks: the size is the durable or the current one, and each
//     4 KiB block that differs comes from the durable or the current
//     content, drawn one by one; a block past the durable size that keeps
//     its durable version reads as zeros. This is ext4 without a journal
//     or with data=writeback (the size is written apart from the data, so
//     a file can end in zeros or stale blocks), and an overwrite in place
//     on any of them (writeback writes pages in no promised order).
//   - DataKept: all kept (only the processes died).
//
// The nth cut of a Mount (Remount, counting from 0, Rewind included)
// draws from its own stream of the seed, so a loop of cuts on one Mount
// needs one seed.
//
// Metadata operations not made durable by an fsync of their directory
// (MetaLoss): create, mkdir, symlink, link, unlink, rmdir, rename (one
// operation, its two directory entries together), chmod and chown (these
// two are made durable by an fsync of their file as well):
//
//   - MetaLost: all lost.
//   - MetaEach: each kept or lost on its own. This is ext4 without a
//     journal (ext2), whose directory and inode blocks reach the disk in
//     any order.
//   - MetaPrefix: the first k, in the order the file system applied them
//     across all directories, k drawn from 0 to all: a journaling file
//     system (ext4's jbd2, xfs's log, btrfs's transactions) commits its
//     metadata in order.
//   - MetaKept: all kept.
//
// LoseAll (DataLost, MetaLost) is the POSIX minimum and a state every
// real file system can be left in (the power failing just after the last
// fsync); KeepAll is the control in which nothing but the processes die;
// Journaled (DataPrefix, MetaPrefix) and Unjournaled (DataBlocks,
// MetaEach) name the closest pairs for the file systems above.
//
// # Where real file systems differ
//
// The model forgets more than some file systems would and less than
// others might, where the difference is not a promise either way:
//
//   - ext4 and xfs commit their journal up to the file's last change at
//     an fsync, so an fsync of one file also makes earlier renames and
//     creations durable, even in other directories; ext4, xfs and btrfs
//     make a new file's name durable with the file's fsync. The model
//     asks for the directory's fsync (MetaPrefix includes those outcomes,
//     MetaLost does not).
//   - ext4 data=ordered with auto_da_alloc starts writing a file's data
//     when it is renamed over an existing one, so that the new name
//     rarely shows an empty file; the model does not (a program must not
//     count on it).
//   - Durability is per directory: a rename between two directories made
//     durable in one directory only is half durable (removed from both or
//     present in both); a directory left with two names after a cut keeps
//     the first found (fsck would keep one). Journaled file systems make
//     such a rename atomic.
//   - Data is lost in whole write calls (DataPrefix) or whole 4 KiB blocks
//     (DataBlocks). Writeback goes by pages: a real append can keep the
//     first pages of one write and lose the rest (a line torn at a 4 KiB
//     boundary), which DataPrefix never does and DataBlocks does. No
//     torn sectors, no stale content of other files (zeros instead), no
//     corrupted metadata, no fsck or lost+found. DataPrefix and
//     MetaPrefix draw their prefixes independently, where btrfs would
//     keep one point in time for both.
//   - A failed fsync (EIO from the disk, then clean pages) is not
//     modelled: syncs fail only by the power cut.
package powercut
