// Package group is group commit for the file store: buyers that arrive
// while a sale's lock is held do not each wait for it. Each posts its
// request in a slot of a small shared memory region, and whoever holds the
// lock next commits every pending request at once: one journal append, one
// fdatasync and one ticket file replacement for the whole batch. Each
// owner sleeps on a futex in its slot until its outcome is written there,
// and returns without ever taking the lock. The journal stays the commit
// point, so a batch is committed exactly when its lines are.
//
// The file store plugs group commit into its transaction: it gives Buy its
// Sale (the lock and the transaction), and a leader's transaction calls
// Batch.Decide to make the batch's records and Batch.Done to publish the
// outcomes. Nothing else calls it: the lock knows nothing of it, and a
// process that holds the lock without it (flock(1), a buyer written in
// another language) is a plain holder the protocol works around.
//
// # The protocol
//
// A buyer claims a free slot (compare-and-swap of its owner word from 0 to
// its pid), writes its request and marks it pending. Then, in a loop: if
// its slot holds an outcome, it frees the slot and returns it; if it gets
// the lock without waiting (LOCK_NB), it leads: it commits every pending
// request, its own among them, publishes the outcomes, unlocks and wakes
// their owners; otherwise, if no process is the successor, it becomes the
// successor and blocks in flock(2) until it gets the lock, then leads;
// otherwise it sleeps on its slot's wake word.
//
// No wakeup is lost: a buyer sleeps only after its request was pending,
// its LOCK_NB failed (so the holder's unlock comes after the request was
// posted) and a successor existed. A leader, after unlocking, wakes every
// slot with an outcome, and the pending ones if there is no successor; a
// successor clears its role before it reads the slots, so it sees every
// request posted while it was the successor. A futex wait returns at once
// if its word changed since it was read, so a wake between the check and
// the sleep is not lost either. The successor covers holders that wake
// nobody: a leader killed with SIGKILL, flock(1) in a script, a process of
// an older ticket or one with group commit off. Only a successor killed at
// the same time as the holder leaves sleepers to the safety net: every
// sleep ends after a second, when the sleeper retries the lock and
// replaces a dead successor.
//
// A buyer whose context is done (a deadline, a signal), or that would not
// wait (Request.NoWait) and found the lock held, withdraws its request if
// no leader has taken it yet: nothing was bought. Otherwise it waits for
// the outcome it was given.
//
// # Crashes
//
// A leader writes each taken request's intended outcome into its slot,
// records the batch's sequence numbers in the region's header, and only
// then appends to the journal. If it dies before publishing, the next
// leader finds the slots still taken: a request whose sale is in the
// journal (same sequence number, buyer, quantity and owner pid, within the
// recorded batch) is published as sold, the others are decided again. So a
// request is never served twice, and never lost. A slot whose owner died
// is freed (kill(pid, 0) says ESRCH); a sale it made stands, like that of
// a buyer killed after its commit.
//
// # Where the region lives
//
// The region is a file of its own, mapped MAP_SHARED, in a directory only
// this user may write ($XDG_RUNTIME_DIR/ticket-group, else
// /dev/shm/ticket-group-UID, else one in the temporary directory), named
// after the sale's journal (its device, inode and birth time), this boot
// of the machine and this PID namespace. So a copy of the sale, a second
// sale sharing one lock file, a recreated lock file or a buyer in a
// container has a region of its own, or none: none can feed requests to
// another sale's leaders or turn group commit off for them. Each leader
// checks, under the lock, that the journal it commits to is its region's,
// and sends its requests back to be bought alone when it is not (the
// journal was replaced since). Processes that share the sale but not the
// region (another user, another machine over NFS, a process of an older
// ticket) take the lock as plain holders: a region only batches the
// requests of the processes that share it, and exclusion never depends on
// it.
//
// # Waiting in step with Go's runtime
//
// A buyer only ever waits in system calls, which Go's runtime monitor
// takes for a goroutine stuck in one: after 10 ms it takes the processor
// back and then polls every 20 us, at a cost of about a quarter of a
// buyer's CPU. A buyer whose waits are short therefore yields now and then
// and sleeps in slices under 10 ms; one whose waits are long (many more
// buyers than processors) sleeps in one call, as yielding only adds to the
// crowd there. The protocol is the same either way: a slice that ends
// without a wake-up goes on sleeping.
//
// Group commit needs Linux (futexes on a shared mapping of a file, /proc
// to tell boots and processes apart). Elsewhere, when the region cannot be
// made or mapped, when the buyer's name does not fit in a slot, and when
// all slots are busy, Buy returns ErrAlone and the caller takes the lock
// itself.
package group
