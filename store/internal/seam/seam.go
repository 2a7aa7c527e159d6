// Package seam is where the tests of the store's packages reach into a
// running buy, as SQLite's tests do: every step of reading and committing
// calls Fault first with the step's name, and a non-nil error is returned
// as that step's failure; every point where a process can die but nothing
// can fail calls Crash. Crash tests replace them to SIGKILL the process at
// exactly that point. The negative controls of the tests switch single
// protections off with the variables below, to show that a test fails
// without them.
//
// Nothing but tests changes any of them: in a program, Fault always
// returns nil, Crash does nothing, and every protection is on.
package seam

import "time"

// Fault is called before each step of a commit; see the package doc.
var Fault = func(step string) error { return nil }

// Crash is called at each point where a process can die but nothing can
// fail; see the package doc.
var Crash = func(step string) {}

// The steps, in the order a buy goes through them.
const (
	Read         = "read"          // read the ticket file
	JournalOpen  = "journal.open"  // open the journal for append
	JournalCut   = "journal.cut"   // cut an unfinished line
	JournalWrite = "journal.write" // append the sale
	JournalSync  = "journal.sync"  // fsync the journal: the commit point
	JournalUndo  = "journal.undo"  // cut the sale of a buy whose ticket file could not be replaced
	TempRemove   = "temp.remove"   // remove a PATH.tmp a crashed writer left
	TempCreate   = "temp.create"   // create PATH.tmp, or open PATH.spare to write over it
	TempWrite    = "temp.write"    // write the new version
	TempSync     = "temp.sync"     // fsync PATH.tmp (Init and Restore only)
	Rename       = "rename"        // rename PATH.tmp over PATH, or swap PATH.spare with it
	DirSync      = "dir.sync"      // fsync the directory (Init, Restore, a new journal)

	// Group commit's points, where crash tests die through Crash; no I/O
	// happens there to fail.
	GroupTake    = "group.take"    // the batch's slots taken, before deciding
	GroupPublish = "group.publish" // the batch committed, outcomes not yet published
	GroupWake    = "group.wake"    // unlocked, owners not yet woken

	// HoldersApplied: in a sale with a per-buyer limit, after a commit,
	// the buyers' slots of the index written, its header not yet.
	HoldersApplied = "holders.applied"
	// HoldsApplied: after a commit, the open holds' index written, its
	// header still marked dirty.
	HoldsApplied = "holds.applied"
)

// GroupSafety is group commit's safety net: the longest a buyer sleeps on
// its slot before it retries the lock itself, so that a sleeper whose lock
// holder and successor were killed together goes on. The tests shorten it,
// or set it to 0 (sleep until woken) to show that no wakeup is lost
// without it.
var GroupSafety = time.Second

// The protections the negative controls switch off.
var (
	// NoGroupWake: a group commit leader owes no wake-up after it unlocks.
	NoGroupWake bool
	// NoIdentityCheck: a lock taken on a file is not checked to be on the
	// file still at its path (package lock).
	NoIdentityCheck bool
	// NoJournalLock: the file store does not lock its journal.
	NoJournalLock bool
	// SharedKept: a kept lock file's descriptor (lock.Kept) serves every
	// lock at once, instead of one lock at a time.
	SharedKept bool
	// NoExchange: the file store renames its new ticket file over the one
	// at the path instead of swapping the two, and so cannot see another
	// process's version it replaces.
	NoExchange bool
	// NoSpareLease: the file store writes over its spare without first
	// making sure, with a lease, that no other process has it open.
	NoSpareLease bool
	// NoSpareNameChecks: the file store writes over a spare that has
	// other names (hard links) or is a file mounted over the spare's name.
	NoSpareNameChecks bool
	// NoLimitCheck: a buy or hold is not checked against the sale's
	// per-buyer limit (the file store's transaction still counts it).
	NoLimitCheck bool
)
