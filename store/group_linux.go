//go:build linux

package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ticketd/ticket/ticket"
	"golang.org/x/sys/unix"
)

// Group commit: buyers that arrive while the lock is held do not each wait
// for it. Each posts its request in a slot of a small shared memory region
// (a file in a private directory of the user's, mapped MAP_SHARED: see
// regionPath), and whoever holds the lock next
// commits every pending request at once: one journal append, one fdatasync
// and one ticket file replacement for the whole batch. Each owner sleeps on a
// futex in its slot until its outcome is written there, and returns without
// ever taking the lock. The journal stays the commit point, so a batch is
// committed exactly when its lines are.
//
// # The protocol
//
// A buyer claims a free slot (compare-and-swap of its owner word from 0 to
// its pid), writes its request and marks it pending. Then, in a loop: if its
// slot holds an outcome, it frees the slot and returns it; if it gets the
// lock without waiting (LOCK_NB), it leads: it commits every pending request,
// its own among them, publishes the outcomes, unlocks and wakes their owners;
// otherwise, if no process is the successor, it becomes the successor and
// blocks in flock(2) until it gets the lock, then leads; otherwise it sleeps
// on its slot's wake word.
//
// No wakeup is lost: a buyer sleeps only after its request was pending, its
// LOCK_NB failed (so the holder's unlock comes after the request was posted)
// and a successor existed. A leader, after unlocking, wakes every slot with
// an outcome, and the pending ones if there is no successor; a successor
// clears its role before it reads the slots, so it sees every request posted
// while it was the successor. A futex wait returns at once if its word
// changed since it was read, so a wake between the check and the sleep is not
// lost either. The successor covers holders that wake nobody: a leader
// killed with SIGKILL, flock(1) in a script, a process of an older ticket or
// one with the fast path off. Only a successor killed at the same time as
// the holder leaves sleepers to the safety net: every sleep ends after
// groupSafety, when the sleeper retries the lock and replaces a dead
// successor.
//
// # Crashes
//
// A leader writes each taken request's intended outcome into its slot,
// records the batch's sequence numbers in the region's header, and only then
// appends to the journal. If it dies before publishing, the next leader finds
// the slots still taken: a request whose sale is in the journal (same
// sequence number, buyer, quantity and owner pid, within the recorded batch)
// is published as sold, the others are decided again. So a request is never
// served twice, and never lost. A slot whose owner died is freed (kill(pid,
// 0) says ESRCH); a sale it made stands, like that of a buyer killed after
// its commit.
//
// # Where the region lives
//
// The lock file stays a plain lock file, which anyone may truncate, delete
// or share. The region is a file of its own in a directory only this user
// may write ($XDG_RUNTIME_DIR/ticket-group, else /dev/shm/ticket-group-UID,
// else one in the temporary directory; see privateDir), named after the
// sale's journal (its device, inode and birth time), this boot of the
// machine and this PID namespace. So a copy of the sale, a second sale
// sharing one lock file, a recreated lock file or a buyer in a container
// has a region of its own, or none: none can feed requests to another
// sale's leaders or turn group commit off for them. Each leader checks,
// under the lock, that the journal it commits to is its region's, and
// sends its requests back to be bought alone when it is not (the journal
// was replaced since). Processes that share the sale but not the region
// (another user, another machine over NFS, a process of an older ticket)
// take the lock as plain holders: a region only batches the requests of
// the processes that share it, and exclusion never depends on it.
//
// The fast path is off, and Buy takes the lock itself as before, when
// Options.NoGroup is set, when the region cannot be made or mapped, when
// the buyer's name does not fit in a slot, and when all slots are busy.

const (
	groupMagic uint64 = 0x326e7570_6f72676b // "kgroupn2": layout 2
	groupSlots        = 64
	slotSize          = 512
	headerSize        = 512
	regionSize        = headerSize + groupSlots*slotSize

	// header
	offMagic     = 0  // uint64: groupMagic once set up
	offSuccessor = 8  // int32: pid of the successor, 0 if none
	offBatchOpen = 12 // uint32: 1 while a leader commits a batch
	offBatchFrom = 16 // int64: the batch's first sale number
	offBatchTo   = 24 // int64: its last
	offLastBatch = 40 // uint32: how many requests the last batch held

	// slot
	offState    = 0  // uint32: slotFree...slotRetry
	offWake     = 4  // uint32: futex word, changed to wake the owner
	offOwner    = 8  // int32: owner pid; 0 when the slot is free
	offDurable  = 12 // uint32: 1 if the request needs its sale fsynced (not --no-sync)
	offQty      = 16 // int64
	offSeq      = 24 // int64: result (or intent while taken): the sale's number, the version
	offLeft     = 32 // int64
	offTotal    = 40 // int64
	offSold     = 48 // int64
	offTime     = 56 // int64: Unix nanoseconds of the sale
	offBuyerLen = 64 // uint32
	offBuyer    = 68 // buyer name bytes

	maxSlotBuyer = slotSize - offBuyer
)

// Slot states. A slot with owner 0 is free whatever its state says.
const (
	slotFree      uint32 = iota
	slotPending          // the request waits for a leader
	slotTaken            // a leader is committing it; the intent is in the slot
	slotSold             // outcome: sold, result in the slot
	slotSoldOut          // outcome: not enough tickets left
	slotRetry            // the leader's commit failed: buy alone to learn why
	slotAbandoned        // its owner returned without an outcome: the next leader frees it
)

// groupSafety bounds every futex sleep, so that a sleeper whose holder and
// successor were killed together still retries the lock. Tests set it to 0
// (sleep until woken) to show that no wakeup is lost without it.
var groupSafety = time.Second

// groupWake is the wake-up a leader owes after unlocking; tests switch it
// off to show that the no-lost-wakeup test fails without it.
var groupWake = true

// region is the shared memory of a sale's group commit.
type region struct {
	mem  []byte
	key  regionKey // the journal it serves
	path string    // its file
	ino  uint64    // its file's inode
}

func (r *region) u32(off int) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&r.mem[off])) }
func (r *region) i32(off int) *atomic.Int32  { return (*atomic.Int32)(unsafe.Pointer(&r.mem[off])) }
func (r *region) i64(off int) *atomic.Int64  { return (*atomic.Int64)(unsafe.Pointer(&r.mem[off])) }
func (r *region) u64(off int) *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&r.mem[off])) }

// slot is one request's place in the region.
type slot struct {
	r    *region
	base int
}

func (r *region) slot(i int) slot { return slot{r, headerSize + i*slotSize} }

func (s slot) state() *atomic.Uint32 { return s.r.u32(s.base + offState) }
func (s slot) wake() *atomic.Uint32  { return s.r.u32(s.base + offWake) }
func (s slot) owner() *atomic.Int32  { return s.r.i32(s.base + offOwner) }
func (s slot) i64(off int) *atomic.Int64 {
	return s.r.i64(s.base + off)
}

func (s slot) buyer() string {
	n := int(s.r.u32(s.base + offBuyerLen).Load())
	if n > maxSlotBuyer {
		n = maxSlotBuyer
	}
	return string(s.r.mem[s.base+offBuyer : s.base+offBuyer+n])
}

// region is also where it came from: the journal it serves.
type regionKey struct {
	dev, ino uint64
	birth    int64 // the journal's birth time in nanoseconds, 0 where unknown
}

var (
	mappingsMu sync.Mutex
	mappings   = map[string]*region{} // by the region file's path
)

// groupRegion returns the region of the sale whose journal is at
// journalPath, mapping it on first use (or when its file was removed
// since, see sweep), or nil where the fast path is unavailable.
func groupRegion(journalPath string) *region {
	key, err := journalKey(journalPath)
	if err != nil {
		return nil
	}
	path, err := regionPath(key)
	if err != nil {
		return nil
	}
	mappingsMu.Lock()
	defer mappingsMu.Unlock()
	if r := mappings[path]; r != nil && r.current() {
		return r
	}
	r, err := mapRegion(key, path)
	if err != nil {
		return nil
	}
	// A region replaced here stays mapped: a goroutine may still use it.
	mappings[path] = r
	return r
}

// current reports whether the region's file is still at its path.
func (r *region) current() bool {
	var st unix.Stat_t
	return unix.Stat(r.path, &st) == nil && st.Ino == r.ino
}

// regionAge is how long a region's file may stay unused before the next
// process that makes a region removes it (see sweep).
const regionAge = time.Hour

// sweep removes, from the directory of dir's regions, the files of
// regions nobody has used for regionAge and in which no request waits,
// and those of another boot (where the directory outlives a reboot), so
// that the sales a user bought from leave nothing behind for long. A
// process that still maps a removed region works on in it, and the next
// one to come makes a new file: each leads its own region's requests,
// under the same lock.
func sweep(dir string) {
	names, err := filepath.Glob(filepath.Join(dir, "*.group"))
	if err != nil {
		return
	}
	prefix := fmt.Sprintf("%x-", bootHash())
	for _, name := range names {
		fi, err := os.Stat(name)
		if err != nil {
			continue
		}
		if strings.HasPrefix(filepath.Base(name), prefix) && (time.Since(fi.ModTime()) < regionAge || !idleFile(name)) {
			continue
		}
		_ = os.Remove(name)
	}
}

// idleFile reports whether the region in the file at path has no request
// of a live process and no open batch.
func idleFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, regionSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return false
	}
	defer unix.Munmap(mem)
	r := &region{mem: mem}
	if r.u32(offBatchOpen).Load() != 0 {
		return false
	}
	for i := range groupSlots {
		if o := r.slot(i).owner().Load(); o != 0 && alive(o) {
			return false
		}
	}
	return true
}

// journalKey identifies the journal at path: a copy, or a journal made
// anew at the same path, is another.
func journalKey(path string) (regionKey, error) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_INO|unix.STATX_BTIME, &st); err != nil {
		return regionKey{}, err
	}
	k := regionKey{dev: unix.Mkdev(st.Dev_major, st.Dev_minor), ino: st.Ino}
	if st.Mask&unix.STATX_BTIME != 0 {
		k.birth = st.Btime.Sec*1e9 + int64(st.Btime.Nsec)
	}
	return k, nil
}

// serves reports whether r is the region of the journal open as f.
func (r *region) serves(f *os.File) bool {
	var st unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_INO|unix.STATX_BTIME, &st); err != nil {
		return false
	}
	k := regionKey{dev: unix.Mkdev(st.Dev_major, st.Dev_minor), ino: st.Ino}
	if st.Mask&unix.STATX_BTIME != 0 {
		k.birth = st.Btime.Sec*1e9 + int64(st.Btime.Nsec)
	}
	return k == r.key
}

// bootHash identifies this boot of the machine (0 if unknown).
var bootHash = sync.OnceValue(func() uint64 {
	b := currentBoot()
	if len(b) == 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64() | 1
})

// pidNS identifies this process's PID namespace: slots name owners by pid,
// which means nothing across namespaces.
var pidNS = sync.OnceValue(func() uint64 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return 0
	}
	return st.Ino
})

// regionPath returns the file of the region for key in this boot and PID
// namespace, in the user's private directory.
func regionPath(key regionKey) (string, error) {
	boot, ns := bootHash(), pidNS()
	if boot == 0 || ns == 0 {
		return "", errors.New("no /proc: cannot tell boots or processes apart")
	}
	dir, err := regionDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, fmt.Sprintf("%x-%x-%x-%x-%x.group", boot, ns, key.dev, key.ino, key.birth)), nil
}

// regionDir is the user's private directory of regions, made (and
// checked) once per process.
var regionDir = sync.OnceValues(func() (string, error) { return privateDir("ticket-group") })

// mapRegion maps the region for key, making its file if it is missing,
// with its blocks allocated first: a store into a hole of a mapping on a
// full disk would be SIGBUS.
func mapRegion(key regionKey, path string) (*region, error) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		sweep(filepath.Dir(path))
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, regionSize); err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, regionSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	r := &region{mem: mem, key: key, path: path, ino: st.Ino}
	if !r.u64(offMagic).CompareAndSwap(0, groupMagic) && r.u64(offMagic).Load() != groupMagic {
		_ = unix.Munmap(mem)
		return nil, fmt.Errorf("%s: the region has another layout", path)
	}
	return r, nil
}

// claim takes a free slot for this process, or returns false if all are busy.
func (r *region) claim() (slot, bool) {
	pid := int32(os.Getpid())
	for i := range groupSlots {
		s := r.slot(i)
		if s.owner().Load() == 0 && s.owner().CompareAndSwap(0, pid) {
			return s, true
		}
	}
	return slot{}, false
}

// post writes a request into a claimed slot and makes it pending.
func (s slot) post(buyer string, qty int64, durable bool) {
	s.i64(offQty).Store(qty)
	d := uint32(0)
	if durable {
		d = 1
	}
	s.r.u32(s.base + offDurable).Store(d)
	s.i64(offSeq).Store(0) // no intent of an earlier request may match

	n := copy(s.r.mem[s.base+offBuyer:s.base+slotSize], buyer)
	s.r.u32(s.base + offBuyerLen).Store(uint32(n))
	s.state().Store(slotPending)
}

// release frees a slot its owner is done with.
func (s slot) release() {
	s.state().Store(slotFree)
	s.owner().Store(0)
}

// futexWait sleeps while *word == val, at most d (0: until woken), and
// reports false if it timed out. The region is a shared file mapping, so
// the futex is not a private one.
func futexWait(word *atomic.Uint32, val uint32, d time.Duration) bool {
	var ts *unix.Timespec
	if d > 0 {
		t := unix.NsecToTimespec(d.Nanoseconds())
		ts = &t
	}
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), 0 /* FUTEX_WAIT */, uintptr(val), uintptr(unsafe.Pointer(ts)), 0, 0)
	return errno != unix.ETIMEDOUT
}

// wakeSlot makes the owner of s look at its slot again.
func wakeSlot(s slot) {
	s.wake().Add(1)
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(s.wake())), 1 /* FUTEX_WAKE */, 1, 0, 0, 0)
}

// reclaim frees a slot whose owner died. The owner word goes to -1 first,
// which no claimer takes, so that a buyer who claims the slot the moment it
// is free cannot have its request overwritten.
func reclaim(s slot, dead int32) {
	if s.owner().CompareAndSwap(dead, -1) {
		s.state().Store(slotFree)
		s.owner().Store(0)
	}
}

// alive reports whether pid may still run: only ESRCH says it does not.
func alive(pid int32) bool {
	return pid > 0 && unix.Kill(int(pid), 0) != unix.ESRCH
}

// running is alive, and also false for a zombie: a killed successor whose
// parent has not reaped it yet no longer waits in flock(2) for anyone.
func running(pid int32) bool {
	if !alive(pid) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// "pid (comm) S ...": the state follows the last ')'. A stopped
	// process (Ctrl-Z, SIGSTOP) takes no lock for anyone either.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || !bytes.ContainsAny(b[i+2:i+3], "ZXTt")
}

// groupBuy is Buy through group commit. It returns handled false, having
// changed nothing, when the fast path is unavailable or the leader's commit
// failed, and the caller then buys alone.
func (s *Store) groupBuy(ctx context.Context, buyer string, qty int64) (r Receipt, handled bool, err error) {
	if s.opts.NoGroup || s.opts.Unlocked || len(buyer) > maxSlotBuyer {
		return r, false, nil
	}
	f, l, err := s.prepare()
	if err != nil {
		return r, true, err
	}
	if _, err := os.Stat(f.journal); errors.Is(err, fs.ErrNotExist) {
		// The region is named after the journal, which a seed file has
		// not had yet. Nothing is created beside a file that is refused.
		if _, _, err := loadState(f.ticket); err != nil {
			return r, true, err
		}
		if err := createJournal(f.journal, l); err != nil {
			return r, true, err
		}
	}
	reg := groupRegion(f.journal)
	if reg == nil {
		return r, false, nil
	}
	sl, ok := reg.claim()
	if !ok {
		return r, false, nil
	}
	me := int32(os.Getpid())
	sl.post(buyer, qty, !s.opts.NoSync)
	stop := context.AfterFunc(ctx, func() { wakeSlot(sl) })
	defer stop()
	withdraw := func() bool {
		if sl.state().CompareAndSwap(slotPending, slotFree) {
			sl.release()
			return true
		}
		return false
	}
	failures := 0 // commits led by this buyer that failed
	for tried := false; ; tried = true {
		w := sl.wake().Load()
		st := sl.state().Load()
		if sl.owner().Load() != me || st == slotFree {
			// Freed by a leader that took this process for dead: it can
			// only be in another PID namespace, where nothing is certain.
			return r, true, fmt.Errorf("%s: this buyer's request was dropped by another process (another PID namespace?); check with ticket verify before buying again: %w", f.lock, ErrUnconfirmed)
		}
		switch st {
		case slotSold, slotSoldOut:
			r, err = sl.receipt(buyer, qty)
			sl.release()
			return r, true, err
		case slotRetry:
			sl.release()
			return r, false, nil
		}
		if tried && ctx.Err() != nil && withdraw() {
			// Given up (a deadline, a signal) before any leader took the
			// request: nothing was bought, as when waiting in flock(2).
			// Like Lock, a context done on entry (--nowait) still gets one
			// try at the lock.
			return r, true, lockCtxErr(ctx, f.lock)
		}
		unlock, ok, err := tryLock(f.lock, l.perm)
		if err != nil && withdraw() {
			return r, true, err
		}
		var pre *os.File
		if !ok && ctx.Err() == nil && reg.i32(offSuccessor).CompareAndSwap(0, me) {
			// Wait in flock(2) for whoever holds the lock, on behalf of
			// every sleeper, with the next version's file made while
			// waiting (a file system may take long to allocate an inode).
			pre, _ = newTempFile(filepath.Dir(f.ticket), l.perm)
			unlock, err = Lock(ctx, f.lock, l.perm)
			reg.i32(offSuccessor).CompareAndSwap(me, 0)
			if err != nil {
				closeAfterUnlock(pre)
				wakePending(reg) // one of them takes over as successor
				continue
			}
			ok = true
		}
		if ok {
			old, lerr := s.lead(f, l, reg, pre)
			// If the commit this buyer led failed, its own request gets
			// the error, as if it had bought alone (the others retry
			// alone). It withdraws a request still pending before it
			// unlocks, or the next leader could sell it meanwhile.
			withdrawn := lerr != nil && withdraw()
			unlock()
			wakeAfterUnlock(reg)
			closeAfterUnlock(old)
			closeAfterUnlock(pre)
			if lerr == nil {
				continue
			}
			switch st := sl.state().Load(); {
			case errors.Is(lerr, errRegionStale) && st == slotRetry:
				sl.release()
				return r, false, nil // buy alone, from the journal there is now
			case withdrawn:
				return r, true, lerr
			case st == slotRetry:
				sl.release()
				return r, true, lerr
			case st == slotTaken && errors.Is(lerr, ErrUnconfirmed):
				// The intent, which may stand: its line is beyond the
				// ticket file. This buyer returns with it; the slot is
				// abandoned, so that no later leader decides it again.
				if r, done, err := sl.abandon(buyer, qty); done {
					return r, true, err
				}
				r, _ = sl.receipt(buyer, qty)
				return r, true, lerr
			}
			if failures++; failures >= 3 && sl.state().Load() == slotTaken {
				// A crashed leader's request that no commit manages to
				// settle: its sale may stand.
				if r, done, err := sl.abandon(buyer, qty); done {
					return r, true, err
				}
				return r, true, fmt.Errorf("%w: %w", ErrUnconfirmed, lerr)
			}
			continue
		}
		if ctx.Err() != nil && withdraw() {
			return r, true, lockCtxErr(ctx, f.lock)
		}
		if futexWait(sl.wake(), w, groupSafety) {
			continue
		}
		// The safety net: nobody woke this buyer for groupSafety. Its
		// next round retries the lock; a dead successor is replaced.
		if succ := reg.i32(offSuccessor).Load(); succ != 0 && !running(succ) {
			reg.i32(offSuccessor).CompareAndSwap(succ, 0)
		}
	}
}

// abandon gives up a taken slot whose outcome its owner cannot wait for:
// the next leader frees it without deciding it again (whatever a leader
// already committed for it stands). If a leader published an outcome
// first, abandon returns that instead (done true), freeing the slot.
func (s slot) abandon(buyer string, qty int64) (r Receipt, done bool, err error) {
	if s.state().CompareAndSwap(slotTaken, slotAbandoned) {
		return r, false, nil
	}
	switch s.state().Load() {
	case slotSold, slotSoldOut:
		r, err = s.receipt(buyer, qty)
		s.release()
		return r, true, err
	}
	return r, false, nil
}

// receipt reads the outcome of the owner's own request.
func (s slot) receipt(buyer string, qty int64) (Receipt, error) {
	st := ticket.State{Left: s.i64(offLeft).Load(), Total: s.i64(offTotal).Load(), Sold: s.i64(offSold).Load(), Version: s.i64(offSeq).Load()}
	if s.state().Load() == slotSoldOut {
		return Receipt{State: st}, fmt.Errorf("%w: %d left, wanted %d", ticket.ErrSoldOut, st.Left, qty)
	}
	sale := ticket.Sale{Seq: st.Version, Buyer: buyer, Qty: qty, Left: st.Left, Total: st.Total, PID: os.Getpid(), Time: time.Unix(0, s.i64(offTime).Load()).UTC()}
	return Receipt{Sale: sale, State: st}, nil
}

// wakeAfterUnlock is the wake-up a leader owes once it has unlocked: every
// slot with an outcome (or left taken by a failed commit), and the pending
// ones when no successor will take the lock for them.
func wakeAfterUnlock(r *region) {
	if !groupWake {
		return
	}
	crashPoint(stepGroupWake)
	pending := false
	for i := range groupSlots {
		s := r.slot(i)
		if s.owner().Load() == 0 {
			continue
		}
		switch s.state().Load() {
		case slotTaken, slotSold, slotSoldOut, slotRetry:
			wakeSlot(s)
		case slotPending:
			pending = true
		}
	}
	if !pending {
		return
	}
	if succ := r.i32(offSuccessor).Load(); succ != 0 {
		if running(succ) {
			return // it takes the lock next, and commits them
		}
		r.i32(offSuccessor).CompareAndSwap(succ, 0)
	}
	wakePending(r)
}

// wakePending wakes every pending slot's owner.
func wakePending(r *region) {
	for i := range groupSlots {
		if s := r.slot(i); s.owner().Load() != 0 && s.state().Load() == slotPending {
			wakeSlot(s)
		}
	}
}

// lead commits every pending request in one transaction, with the lock
// held, and publishes the outcomes. It returns the replaced ticket file
// still open, for closeAfterUnlock. With no request to commit, it does
// nothing: a successor whose own request another leader served only
// passes the lock on.
func (s *Store) lead(f files, l like, r *region, pre *os.File) (old *os.File, err error) {
	if !r.busy() {
		return nil, nil
	}
	r.gather()
	var (
		batch   []slot // taken by this leader, intents written
		settled bool   // take ran: a crashed leader's batch is settled
		stale   bool   // the journal is not the region's: send everyone back
	)
	// The outcomes are published, or the requests sent back, while the
	// journal is still locked: a process that locked another lock file
	// (someone deleted PATH.lock) and waits for the journal must not find
	// this batch half done and take it for a crashed leader's.
	publish := func(err error) {
		if stale {
			// The journal was replaced (init --force, copy --force) since
			// these requests were posted: each buys alone, from the new one.
			for i := range groupSlots {
				sl := r.slot(i)
				if !sl.state().CompareAndSwap(slotPending, slotRetry) {
					sl.state().CompareAndSwap(slotTaken, slotRetry)
				}
			}
			r.u32(offBatchOpen).Store(0)
			return
		}
		switch {
		case err == nil:
			crashPoint(stepGroupPublish)
			for _, sl := range batch {
				sl.state().CompareAndSwap(slotTaken, sl.outcome())
			}
			r.u32(offBatchOpen).Store(0)
		case errors.Is(err, ErrUnconfirmed):
			// The sales may stand: leave them taken, with the batch open,
			// for the next leader to find in the journal or decide again.
		default:
			for _, sl := range batch {
				sl.state().CompareAndSwap(slotTaken, slotRetry)
			}
			if settled {
				// This batch's lines were taken back. A crashed leader's
				// batch that take did not reach stays open for the next
				// leader.
				r.u32(offBatchOpen).Store(0)
			}
		}
	}
	return s.locked(f, l, pre, func(state ticket.State, j *journal) (ticket.State, []byte, error) {
		if !r.serves(j.f) {
			stale = true
			return state, nil, errRegionStale
		}
		var err error
		if batch, err = take(r, j, state); err != nil {
			return state, nil, err
		}
		settled = true
		crashPoint(stepGroupTake)
		next, lines := decide(r, batch, state)
		r.u32(offLastBatch).Store(uint32(len(batch)))
		if len(lines) == 0 {
			return next, nil, nil
		}
		r.i64(offBatchFrom).Store(state.Version + 1)
		r.i64(offBatchTo).Store(next.Version)
		r.u32(offBatchOpen).Store(1)
		// A --no-sync leader still fsyncs a batch that holds a durable
		// buyer's request.
		for _, sl := range batch {
			if sl.r.u32(sl.base+offDurable).Load() != 0 {
				j.noSync = false
			}
		}
		return next, lines, nil
	}, publish)
}

// errRegionStale is a leader's region that no longer serves the sale's
// journal: its requests are bought alone.
var errRegionStale = errors.New("the journal was replaced since these requests were posted")

// groupDelay bounds how long a leader waits for the requests of a batch as
// large as the last one to arrive.
var groupDelay = 100 * time.Microsecond

// gather waits, at most groupDelay and yielding the processor, until as
// many requests are pending as the last batch held: under a steady load,
// the owners just served post their next requests within microseconds,
// and committing them together saves an fsync each.
func (r *region) gather() {
	want := int(r.u32(offLastBatch).Load())
	if want < 2 {
		return
	}
	deadline := time.Now().Add(groupDelay)
	for r.pending() < want && time.Now().Before(deadline) {
		_, _, _ = unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

// pending counts the pending requests.
func (r *region) pending() int {
	n := 0
	for i := range groupSlots {
		if s := r.slot(i); s.owner().Load() != 0 && s.state().Load() == slotPending {
			n++
		}
	}
	return n
}

// busy reports whether a leader has work: a pending request, or one a
// crashed leader left taken.
func (r *region) busy() bool {
	if r.u32(offBatchOpen).Load() != 0 {
		return true
	}
	for i := range groupSlots {
		if s := r.slot(i); s.owner().Load() != 0 {
			if st := s.state().Load(); st == slotPending || st == slotTaken || st == slotAbandoned {
				return true
			}
		}
	}
	return false
}

// outcome is the state that publishes a taken slot's intent.
func (s slot) outcome() uint32 {
	if s.i64(offSeq).Load() == 0 {
		return slotSoldOut
	}
	return slotSold
}

// take collects the requests to commit: every pending slot, and every slot
// a crashed leader left taken whose sale is not in the journal. A crashed
// leader's slots whose sales are in the journal are published as sold on
// the spot (they are committed; Read shows them even before the ticket file
// is replaced), and slots whose owner died are freed.
func take(r *region, j *journal, state ticket.State) (batch []slot, err error) {
	var committed map[int64]ticket.Sale // the open batch's sales, by number
	if r.u32(offBatchOpen).Load() != 0 {
		from, to := r.i64(offBatchFrom).Load(), r.i64(offBatchTo).Load()
		if committed, err = j.salesFrom(from, to); err != nil {
			return nil, err
		}
	}
	for i := range groupSlots {
		s := r.slot(i)
		owner := s.owner().Load()
		if owner == 0 {
			continue
		}
		if !alive(owner) {
			reclaim(s, owner)
			continue
		}
		switch s.state().Load() {
		case slotAbandoned:
			reclaim(s, owner)
		case slotPending:
			if s.state().CompareAndSwap(slotPending, slotTaken) {
				batch = append(batch, s)
			}
		case slotTaken: // a crashed leader's
			seq := s.i64(offSeq).Load()
			if sale, ok := committed[seq]; ok && seq != 0 && sale.PID == int(owner) && sale.Qty == s.i64(offQty).Load() && sale.Buyer == s.buyer() {
				s.i64(offLeft).Store(sale.Left)
				s.i64(offTotal).Store(state.Total)
				s.i64(offSold).Store(state.Total - sale.Left)
				s.i64(offTime).Store(sale.Time.UnixNano())
				s.state().Store(slotSold)
				continue
			}
			batch = append(batch, s)
		}
	}
	r.u32(offBatchOpen).Store(0)
	return batch, nil
}

// decide applies the batch's requests to state in turn, writes each one's
// intended outcome into its slot, and returns the new state and the journal
// lines of the sales.
func decide(r *region, batch []slot, state ticket.State) (ticket.State, []byte) {
	var lines []byte
	now := time.Now().UTC()
	for _, s := range batch {
		qty := s.i64(offQty).Load()
		next, err := state.Take(qty)
		if err != nil {
			s.i64(offSeq).Store(0) // sold out
			s.i64(offLeft).Store(state.Left)
			s.i64(offTotal).Store(state.Total)
			s.i64(offSold).Store(state.Sold)
			continue
		}
		sale := ticket.Sale{Seq: next.Version, Buyer: s.buyer(), Qty: qty, Left: next.Left, Total: next.Total, PID: int(s.owner().Load()), Time: now}
		lines = sale.AppendLine(lines)
		s.i64(offSeq).Store(next.Version)
		s.i64(offLeft).Store(next.Left)
		s.i64(offTotal).Store(next.Total)
		s.i64(offSold).Store(next.Sold)
		s.i64(offTime).Store(now.UnixNano())
		state = next
	}
	return state, lines
}
