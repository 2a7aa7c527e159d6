//go:build linux

package group

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/ticket"
	"golang.org/x/sys/unix"
)

// The region's layout: a header, then groupSlots slots.
const (
	groupMagic uint64 = 0x336e7570_6f72676b // "kgroupn3": layout 3
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
	offState    = 0  // uint32: slotFree...slotAbandoned
	offWake     = 4  // uint32: futex word, changed to wake the owner
	offOwner    = 8  // int32: owner pid; 0 when the slot is free
	offDurable  = 12 // uint32: 1 if the request needs its sale fsynced (not --no-sync)
	offQty      = 16 // int64
	offSeq      = 24 // int64: result (or intent while taken): the sale's number, the version
	offLeft     = 32 // int64
	offTotal    = 40 // int64
	offSold     = 48 // int64
	offTime     = 56 // int64: Unix nanoseconds of the sale
	offKind     = 64 // uint32: the request's kind (see kindCode)
	offBuyerLen = 68 // uint32
	offArg      = 72 // int64: a hold's duration in nanoseconds; a confirm's hold's number
	offTag      = 80 // uint32: the random part of the hold's id: a confirm's, or (result) a hold's
	offExpires  = 88 // int64: result of a hold: its expiry in Unix nanoseconds
	offBuyer    = 96 // buyer name bytes; a confirm's result: its hold's buyer

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

// A Region is the shared memory of one sale's group commit, mapped by
// every process of this user that buys from the sale.
type Region struct {
	mem  []byte
	key  regionKey // the journal it serves
	path string    // its file
	ino  uint64    // its file's inode
}

func (r *Region) u32(off int) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&r.mem[off])) }
func (r *Region) i32(off int) *atomic.Int32  { return (*atomic.Int32)(unsafe.Pointer(&r.mem[off])) }
func (r *Region) i64(off int) *atomic.Int64  { return (*atomic.Int64)(unsafe.Pointer(&r.mem[off])) }
func (r *Region) u64(off int) *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&r.mem[off])) }

// slot is one request's place in the region.
type slot struct {
	r    *Region
	base int
}

func (r *Region) slot(i int) slot { return slot{r, headerSize + i*slotSize} }

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

// regionKey is where a region came from: the journal it serves.
type regionKey struct {
	dev, ino uint64
	birth    int64 // the journal's birth time in nanoseconds, 0 where unknown
}

var (
	mappingsMu sync.Mutex
	mappings   = map[string]*Region{} // by the region file's path
	recent     = map[string]opened{}  // by the journal's path: what Open found last, and when
)

// opened is a region Open returned for a journal's path, and when it
// looked.
type opened struct {
	r  *Region
	at time.Time
}

// recheck is how long Open trusts what it found for a journal's path
// before it looks again (a stat of the journal and one of the region's
// file, two system calls of a buy that takes about 30). A journal made
// anew at the path meanwhile (init --force, copy --force) is no harm: a
// leader commits a region's requests only to the journal the region
// serves (Batch.Decide), and sends them back to be made alone otherwise;
// nor is a region's file removed meanwhile (see sweep): the process that
// still maps it leads its own requests.
const recheck = 100 * time.Millisecond

// Open returns the region of the sale whose journal is at journalPath,
// mapping it on first use in this process (or when its file was removed
// since), and an error where group commit is unavailable: the journal
// does not exist, or the region cannot be made or mapped.
func Open(journalPath string) (*Region, error) {
	now := time.Now()
	mappingsMu.Lock()
	if o, ok := recent[journalPath]; ok && now.Sub(o.at) < recheck && now.After(o.at) {
		mappingsMu.Unlock()
		return o.r, nil
	}
	mappingsMu.Unlock()
	r, err := open(journalPath)
	if err == nil {
		mappingsMu.Lock()
		if len(recent) >= 256 { // a program that sells from many sales
			clear(recent)
		}
		recent[journalPath] = opened{r, now}
		mappingsMu.Unlock()
	}
	return r, err
}

// open is Open, looking.
func open(journalPath string) (*Region, error) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, journalPath, 0, unix.STATX_INO|unix.STATX_BTIME, &st); err != nil {
		return nil, files.Error("stat", journalPath, err)
	}
	key := keyOf(&st)
	path, err := regionPath(key)
	if err != nil {
		return nil, err
	}
	mappingsMu.Lock()
	defer mappingsMu.Unlock()
	if r := mappings[path]; r != nil && r.current() {
		return r, nil
	}
	r, err := mapRegion(key, path)
	if err != nil {
		return nil, err
	}
	// A region replaced here stays mapped: a goroutine may still use it.
	mappings[path] = r
	return r, nil
}

// keyOf identifies a journal: a copy, or a journal made anew at the same
// path, is another.
func keyOf(st *unix.Statx_t) regionKey {
	k := regionKey{dev: unix.Mkdev(st.Dev_major, st.Dev_minor), ino: st.Ino}
	if st.Mask&unix.STATX_BTIME != 0 {
		k.birth = st.Btime.Sec*1e9 + int64(st.Btime.Nsec)
	}
	return k
}

// serves reports whether r is the region of the journal open as f.
func (r *Region) serves(f *os.File) bool {
	var st unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_INO|unix.STATX_BTIME, &st); err != nil {
		return false
	}
	return keyOf(&st) == r.key
}

// current reports whether the region's file is still at its path.
func (r *Region) current() bool {
	var st unix.Stat_t
	return unix.Stat(r.path, &st) == nil && st.Ino == r.ino
}

// regionAge is how long a region's file may stay unused before a process
// that makes a region removes it (see sweep: the first to make one
// sweepEvery after the last sweep).
const regionAge = time.Hour

// sweep removes, from the directory of dir's regions, the files of
// regions nobody has used for regionAge and in which no request waits,
// and those of another boot (where the directory outlives a reboot), so
// that the sales a user bought from leave nothing behind for long. A
// process that still maps a removed region works on in it, and the next
// one to come makes a new file: each leads its own region's requests,
// under the same lock. (Removing a region's file whenever it fell idle
// made every buy of a long-running process map a new one.)
//
// One process sweeps every sweepEvery at most (see sweepDue): 64 buyer
// processes starting on a new sale each made its region, and each swept
// the whole directory (433 files there after a day of benchmarks: 7% of
// their CPU).
func sweep(dir string) {
	if !sweepDue(dir) {
		return
	}
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

// sweepEvery is how long after a sweep the directory is left unswept.
const sweepEvery = 5 * time.Minute

// sweepDue reports whether dir is due for a sweep, and if so marks it
// swept now: its file "swept" was last touched sweepEvery ago or more, or
// is missing. Processes that look at once may all sweep: removing an
// unused region's file twice does no harm. Where the mark cannot be made,
// every sweep is due, as before there was one.
func sweepDue(dir string) bool {
	mark := filepath.Join(dir, "swept")
	fi, err := os.Lstat(mark)
	if err == nil && fi.Mode().IsRegular() {
		// A mark dated ahead (the clock set back, touch -d) is due: else
		// nothing would be swept until the clock caught up.
		if age := time.Since(fi.ModTime()); age >= 0 && age < sweepEvery {
			return false
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		if f, err := files.Open(mark, os.O_WRONLY|os.O_CREATE|unix.O_NOFOLLOW, 0o600); err == nil {
			f.Close()
		}
		return true
	}
	now := unix.NsecToTimespec(time.Now().UnixNano())
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, mark, []unix.Timespec{now, now}, unix.AT_SYMLINK_NOFOLLOW)
	return true
}

// idleFile reports whether the region in the file at path has no request
// of a live process and no open batch.
func idleFile(path string) bool {
	// Without blocking: a FIFO put at a region's name is not mapped, and
	// not a region nobody uses.
	f, err := files.Open(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, regionSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return false
	}
	defer unix.Munmap(mem)
	r := &Region{mem: mem}
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

// bootHash identifies this boot of the machine (0 if unknown).
var bootHash = sync.OnceValue(func() uint64 {
	b := files.BootID()
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
var regionDir = sync.OnceValues(func() (string, error) {
	dir := files.RuntimeDir("ticket-group", "/dev/shm")
	return dir, files.Private(dir, "ticket-group directory")
})

// mapRegion maps the region for key, making its file if it is missing,
// with its blocks allocated first: a store into a hole of a mapping on a
// full disk would be SIGBUS.
func mapRegion(key regionKey, path string) (*Region, error) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		sweep(filepath.Dir(path))
	}
	f, err := files.Open(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
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
	r := &Region{mem: mem, key: key, path: path, ino: st.Ino}
	if !r.u64(offMagic).CompareAndSwap(0, groupMagic) && r.u64(offMagic).Load() != groupMagic {
		_ = unix.Munmap(mem)
		return nil, fmt.Errorf("%s: the region has another layout", path)
	}
	return r, nil
}

// claim takes a free slot for this process, or returns false if all are busy.
func (r *Region) claim() (slot, bool) {
	for i := range groupSlots {
		s := r.slot(i)
		if s.owner().Load() == 0 && s.owner().CompareAndSwap(0, self) {
			return s, true
		}
	}
	return slot{}, false
}

// The kinds of request a slot carries.
const (
	kindSale uint32 = iota
	kindHold
	kindConfirm
	kindRelease
	kindAdd
	kindRemove
)

// kinds are the request kinds by code.
var kinds = []ticket.Kind{kindSale: ticket.KindSale, kindHold: ticket.KindHold, kindConfirm: ticket.KindConfirm,
	kindRelease: ticket.KindRelease, kindAdd: ticket.KindAdd, kindRemove: ticket.KindRemove}

// kindCode returns a request kind's code in a slot.
func kindCode(k ticket.Kind) uint32 {
	for code, kind := range kinds {
		if kind == k {
			return uint32(code)
		}
	}
	return kindSale
}

// kind returns the kind of the slot's request.
func (s slot) kind() ticket.Kind {
	if code := s.r.u32(s.base + offKind).Load(); int(code) < len(kinds) {
		return kinds[code]
	}
	return ticket.KindSale
}

// holdID returns the id of the hold the slot names: a confirm's, or what a
// hold's leader published.
func (s slot) holdID(seq int64) string {
	return fmt.Sprintf("%d-%08x", seq, s.r.u32(s.base+offTag).Load())
}

// setBuyer writes name into the slot's buyer field.
func (s slot) setBuyer(name string) {
	n := copy(s.r.mem[s.base+offBuyer:s.base+slotSize], name)
	s.r.u32(s.base + offBuyerLen).Store(uint32(n))
}

// post writes a request into a claimed slot and makes it pending. A
// confirm's hold id must be one ticket.HoldSeq takes (see Buy).
func (s slot) post(req Request) {
	s.r.u32(s.base + offKind).Store(kindCode(req.Kind))
	s.i64(offArg).Store(int64(req.For))
	s.r.u32(s.base + offTag).Store(0)
	if req.Kind == ticket.KindConfirm || req.Kind == ticket.KindRelease {
		seq, _ := ticket.HoldSeq(req.Hold)
		tag, _ := strconv.ParseUint(req.Hold[strings.IndexByte(req.Hold, '-')+1:], 16, 32)
		s.i64(offArg).Store(seq)
		s.r.u32(s.base + offTag).Store(uint32(tag))
	}
	s.i64(offQty).Store(req.Qty)
	d := uint32(0)
	if req.Durable {
		d = 1
	}
	s.r.u32(s.base + offDurable).Store(d)
	s.i64(offSeq).Store(0) // no intent of an earlier request may match
	s.setBuyer(req.Buyer)
	s.state().Store(slotPending)
}

// durable reports whether the slot's request needs its sale fsynced.
func (s slot) durable() bool { return s.r.u32(s.base+offDurable).Load() != 0 }

// release frees a slot its owner is done with.
func (s slot) release() {
	s.state().Store(slotFree)
	s.owner().Store(0)
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

// outcome is the state that publishes a taken slot's intent.
func (s slot) outcome() uint32 {
	if s.i64(offSeq).Load() == 0 {
		return slotSoldOut
	}
	return slotSold
}

// pending counts the pending requests.
func (r *Region) pending() int {
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
func (r *Region) busy() bool {
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

// gather waits, at most groupDelay and yielding the processor, until as
// many requests are pending as the last batch held: under a steady load,
// the owners just served post their next requests within microseconds,
// and committing them together saves an fsync each.
func (r *Region) gather() {
	want := int(r.u32(offLastBatch).Load())
	if want < 2 {
		return
	}
	deadline := time.Now().Add(groupDelay)
	for r.pending() < want && time.Now().Before(deadline) {
		_, _, _ = unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

// groupDelay bounds how long a leader waits for the requests of a batch as
// large as the last one to arrive.
var groupDelay = 100 * time.Microsecond

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

// alive reports whether pid may still run: it exists (only ESRCH says it
// does not) and is not dead. A process killed while it waited stays a
// zombie (state Z, or X while it is being reaped) until its parent reaps
// it, which may be never: it still answers kill(pid, 0), but it will never
// read its slot, so a leader must not sell it anything. A stopped process
// (Ctrl-Z, SIGSTOP: state T) is alive: it reads its slot when it goes on.
func alive(pid int32) bool {
	if pid == self {
		return true // the leader itself, serving its own request: no need to ask
	}
	if hasMemory(pid) {
		return true
	}
	_, ok := lookUp(pid)
	return ok
}

// hasMemory reports whether /proc shows pid's executable, which only a
// process that still has its memory has: not a zombie, nor one whose exit
// has released it (a process killed but still exiting, one writing a core
// dump, may show it still: the check that follows would call it alive
// too). One readlink(2), about a third of reading /proc/PID/stat (3 us
// against 8.6 here), which a leader does for every request it takes, with
// the lock held. False says nothing for sure (no such process, a process
// /proc hides or will not show): alive asks lookUp then.
func hasMemory(pid int32) bool {
	var path [32]byte
	p := strconv.AppendInt(append(path[:0], "/proc/"...), int64(pid), 10)
	p = append(p, "/exe"...)
	var buf [1]byte // the link's text is not needed: only that it can be read
	_, err := unix.Readlink(string(p), buf[:])
	return err == nil
}

// running is alive and not stopped: a successor that is a zombie, or
// stopped (Ctrl-Z, SIGSTOP), waits in flock(2) for nobody.
func running(pid int32) bool {
	if pid == self {
		return true
	}
	st, ok := lookUp(pid)
	return ok && st != 'T' && st != 't'
}

// lookUp returns pid's state as /proc shows it (0 where it cannot be
// read) and whether the process may still run. One read of /proc answers
// both (running asks for the successor; alive, where hasMemory cannot
// tell, for a request a leader takes); where it cannot be read
// (no /proc, or no such process), kill(pid, 0) says whether the process
// exists: only ESRCH says it does not.
func lookUp(pid int32) (state byte, ok bool) {
	if pid <= 0 {
		return 0, false
	}
	if st, ok := procState(pid); ok {
		return st, st != 'Z' && st != 'X'
	}
	return 0, unix.Kill(int(pid), 0) != unix.ESRCH
}

// self is this process's pid.
var self = int32(os.Getpid())

// procState returns pid's state letter from /proc/PID/stat, and false if
// it cannot be read (no /proc, or the process just went away: then kill
// is the only word on it).
func procState(pid int32) (byte, bool) {
	// Raw calls: os.ReadFile's open, fstat and reads cost twice the
	// system calls, on every request a leader takes.
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/stat", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	var buf [512]byte
	n, err := unix.Read(fd, buf[:])
	unix.Close(fd)
	if err != nil || n <= 0 {
		return 0, false
	}
	b := buf[:n]
	// "pid (comm) S ...": the state follows the last ')', as comm may
	// hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false
	}
	return b[i+2], true
}
