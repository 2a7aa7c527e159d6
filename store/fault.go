package store

// fault is the seam through which tests inject I/O errors and crashes, as
// SQLite tests itself: every step of reading and committing calls it first
// with the step's name, and a non-nil error is returned as that step's
// failure. In a normal build it always returns nil; tests in this package
// replace it (see fault_test.go).
var fault = func(step string) error { return nil }

// The steps, in the order a buy goes through them.
const (
	stepRead         = "read"          // read the ticket file
	stepJournalOpen  = "journal.open"  // open the journal for append
	stepJournalCut   = "journal.cut"   // cut an unfinished line
	stepJournalWrite = "journal.write" // append the sale
	stepJournalSync  = "journal.sync"  // fsync the journal: the commit point
	stepJournalUndo  = "journal.undo"  // cut the sale of a buy whose ticket file could not be replaced
	stepTempRemove   = "temp.remove"   // remove a PATH.tmp a crashed writer left
	stepTempCreate   = "temp.create"   // create PATH.tmp
	stepTempWrite    = "temp.write"    // write the new version
	stepTempSync     = "temp.sync"     // fsync PATH.tmp (Init and Restore only)
	stepRename       = "rename"        // rename PATH.tmp over PATH
	stepDirSync      = "dir.sync"      // fsync the directory (Init, Restore, a new journal)

	// Group commit (see group_linux.go): points where crash tests die,
	// through crashPoint; no I/O happens there to fail.
	stepGroupTake    = "group.take"    // the batch's slots taken, before deciding
	stepGroupPublish = "group.publish" // the batch committed, outcomes not yet published
	stepGroupWake    = "group.wake"    // unlocked, owners not yet woken
)

// crashPoint is the seam for points where a process can die but nothing
// can fail: crash tests replace it to SIGKILL themselves there.
var crashPoint = func(step string) {}
