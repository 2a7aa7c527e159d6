// Package sem is a counting semaphore for the processes of one machine: at
// most N of them hold one of the N slots of a semaphore at once, each slot
// an flock(2) lock on a file of its own (package store/lock), freed by the
// kernel when its holder dies, even by SIGKILL. It knows nothing of
// tickets; ticket sem runs a command holding a slot.
package sem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/gofrs/flock"
	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/store/lock"
)

// A Semaphore lets at most N processes of one machine hold one of its N
// slots at once. Slot k of the semaphore NAME is an flock(2) exclusive lock
// on the file NAME.k.slot in the semaphore's directory, so a slot held by a
// process that dies is freed by the kernel. Waiters line up on a second
// lock, NAME.queue: the one that holds it is next in line and waits for
// any slot at once, the others wait for it. See Acquire.
//
// The files are created on first use and never deleted. A shell script can
// hold a slot with flock(1) too: flock DIR/NAME.2.slot COMMAND.
type Semaphore struct {
	dir   string
	name  string
	slots int
}

// A Slot is one held slot of a Semaphore. Release frees it.
type Slot struct {
	number  int
	path    string
	release func()
	once    sync.Once
}

// SlotState is what Status reports about one slot.
type SlotState struct {
	Number  int  // 1..N
	Held    bool // some process holds the slot's lock
	PID     int  // the pid recorded by the last holder, 0 if none
	Running bool // PID names a live process (kill(pid, 0) succeeds)
}

// maxSemNameLen is the longest semaphore name accepted.
const maxSemNameLen = 64

// MaxSlots is the most slots a semaphore may have: the next in line keeps
// one thread blocked in flock(2) per slot, and a Go program may have at
// most 10000 threads.
const MaxSlots = 1000

// CheckName reports whether name may name a semaphore: 1 to 64
// letters, digits and the characters . _ - + @, not starting with . or -.
// A name is a file name prefix, so it may not hold a slash or be hidden.
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("the name is empty")
	case len(name) > maxSemNameLen:
		return fmt.Errorf("the name is %d bytes long, at most %d are allowed", len(name), maxSemNameLen)
	case name[0] == '.' || name[0] == '-':
		return fmt.Errorf("the name %q starts with %q", name, name[0])
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-+@", r)
		if !ok {
			return fmt.Errorf("the name %q holds %q: use letters, digits and . _ - + @", name, r)
		}
	}
	return nil
}

// DefaultDir returns the directory semaphores use when none is given:
// $XDG_RUNTIME_DIR/ticket-sem (a per-user tmpfs on most Linux systems),
// else ticket-sem-UID in os.TempDir().
func DefaultDir() string { return files.RuntimeDir("ticket-sem", "") }

// Open returns the semaphore name with the given number of slots in dir
// (DefaultDir if dir is empty). It creates dir with
// permissions 0700 if it is missing, and refuses a dir that is not a real
// directory (a symbolic link, say), is not owned by the current user, or
// is writable by group or others: there another user could plant a
// symbolic link in place of a slot file.
//
// Every process that uses one semaphore must give it the same number of
// slots: each counts only up to its own.
func Open(dir, name string, slots int) (*Semaphore, error) {
	if err := CheckName(name); err != nil {
		return nil, fmt.Errorf("semaphore name: %w", err)
	}
	if slots < 1 || slots > MaxSlots {
		return nil, fmt.Errorf("semaphore %s: %d slots: want 1 to %d", name, slots, MaxSlots)
	}
	if dir == "" {
		dir = DefaultDir()
	}
	dir, err := filepath.Abs(dir) // one name per file, for slotWaiters
	if err != nil {
		return nil, fmt.Errorf("semaphore directory: %w", err)
	}
	if err := files.Private(dir, "semaphore directory"); err != nil {
		return nil, err
	}
	return &Semaphore{dir: dir, name: name, slots: slots}, nil
}

// Dir returns the directory of the semaphore's files.
func (s *Semaphore) Dir() string { return s.dir }

// Name returns the semaphore's name.
func (s *Semaphore) Name() string { return s.name }

// Slots returns the number of slots.
func (s *Semaphore) Slots() int { return s.slots }

func (s *Semaphore) slotPath(k int) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s.%d.slot", s.name, k))
}

func (s *Semaphore) queuePath() string { return filepath.Join(s.dir, s.name+".queue") }

// Acquire takes a free slot and returns it; the caller must Release it.
//
// It lines up: it takes the queue lock (NAME.queue) in a blocking
// flock(2), so that one waiter at a time is next in line; the next in line
// takes a free slot if there is one, else blocks in flock(2) on every slot
// file at once, one goroutine each, keeps the first slot it gets and
// releases any other it gets later, then releases the queue lock. Blocked
// waiters cost no CPU. A ctx already done on entry takes a slot only if
// one is free at that instant, as TryAcquire does.
//
// If ctx's deadline passes first, Acquire returns an error wrapping
// ErrNoSlot (and so lock.ErrLocked); if ctx is cancelled, ctx.Err().
// Either way it holds no slot. A blocked flock(2) cannot be cancelled, so
// the goroutines still blocked on the other slot files remain, after a
// successful Acquire too, each with an open file and a thread blocked in
// flock(2): when one gets its slot it hands it to the next Acquire of this
// process that waits, or releases it at once. There is at most one per
// slot file per process; they end with the process.
func (s *Semaphore) Acquire(ctx context.Context) (*Slot, error) {
	unlockQueue, err := lock.Lock(ctx, s.queuePath(), 0o600)
	switch {
	case errors.Is(err, lock.ErrLocked):
		// The wait is over (or was never wanted) and someone else is next
		// in line: take a slot only if one is free right now.
		return s.TryAcquire()
	case err != nil:
		return nil, s.wrap(err)
	}
	defer unlockQueue()
	sl, err := s.tryAny()
	if sl != nil || err != nil {
		return sl, err
	}
	if ctx.Err() != nil {
		return nil, s.gaveUp(ctx)
	}
	return s.waitAny(ctx)
}

// TryAcquire takes a slot that is free at this instant, without waiting
// or lining up, and returns an error wrapping ErrNoSlot if none is.
func (s *Semaphore) TryAcquire() (*Slot, error) {
	sl, err := s.tryAny()
	if sl == nil && err == nil {
		err = s.noSlot()
	}
	return sl, err
}

// tryAny takes the first free slot, without waiting; nil if none is free.
func (s *Semaphore) tryAny() (*Slot, error) {
	for k := 1; k <= s.slots; k++ {
		unlock, ok, err := lock.TryLock(s.slotPath(k), 0o600)
		if err != nil {
			return nil, s.wrap(err)
		}
		if ok {
			return s.held(k, unlock)
		}
	}
	return nil, nil
}

// waitAny blocks on every slot file at once and keeps the first slot it
// gets.
func (s *Semaphore) waitAny(ctx context.Context) (*Slot, error) {
	got := make(chan slotResult, s.slots) // each waiter sends at most once
	var first *slotResult
	var failed error
	for k := 1; k <= s.slots; k++ {
		subscribe(s.slotPath(k), k, got)
	}
	select {
	case r := <-got:
		first = &r
	case <-ctx.Done():
	}
	for k := 1; k <= s.slots; k++ {
		unsubscribe(s.slotPath(k), got)
	}
	for more := true; more; {
		select {
		case r := <-got: // taken before we unsubscribed
			if first == nil {
				first = &r
			} else if r.err == nil {
				r.unlock() // a second slot: not ours to keep
			}
		default:
			more = false
		}
	}
	switch {
	case first != nil && first.err != nil:
		failed = first.err
	case first != nil && failed != nil:
		first.unlock()
	case first != nil:
		return s.held(first.k, first.unlock)
	}
	if failed != nil {
		return nil, s.wrap(failed)
	}
	return nil, s.gaveUp(ctx)
}

// slotResult is a slot lock that a waiter got, or the error it got.
type slotResult struct {
	k      int
	unlock func()
	err    error
}

// slotWaiters are the goroutines of this process blocked in flock(2) on a
// slot file, at most one per file. A blocked flock(2) cannot be cancelled,
// so a waiter outlives the waitAny that started it: it hands the slot to
// whichever waitAny subscribes to it when it gets the lock, or releases
// it at once if none does. Reusing waiters bounds their number (and the
// threads they block) by the number of slot files, however often a
// long-running process acquires.
var slotWaiters = struct {
	sync.Mutex
	m map[string]*slotWaiter
}{m: map[string]*slotWaiter{}}

type slotWaiter struct {
	k  int
	to chan<- slotResult // nil: nobody waits, release at once
}

// subscribe has the waiter on path (started if there is none) send slot k
// to to when it gets the lock.
func subscribe(path string, k int, to chan<- slotResult) {
	slotWaiters.Lock()
	defer slotWaiters.Unlock()
	w := slotWaiters.m[path]
	if w == nil {
		w = &slotWaiter{}
		slotWaiters.m[path] = w
		go func() {
			// Lock lets go of a slot file deleted or replaced while it
			// waited, and locks the one at path.
			unlock, err := lock.Lock(context.Background(), path, 0o600)
			slotWaiters.Lock()
			defer slotWaiters.Unlock()
			delete(slotWaiters.m, path)
			switch {
			case w.to != nil:
				w.to <- slotResult{w.k, unlock, err} // buffered: never blocks
			case err == nil:
				unlock()
			}
		}()
	}
	w.k, w.to = k, to
}

// unsubscribe stops the waiter on path from sending to to.
func unsubscribe(path string, to chan<- slotResult) {
	slotWaiters.Lock()
	defer slotWaiters.Unlock()
	if w := slotWaiters.m[path]; w != nil && w.to == to {
		w.to = nil
	}
}

// held records this process's pid in slot k's file, which it has just
// locked, and returns the Slot.
func (s *Semaphore) held(k int, unlock func()) (*Slot, error) {
	sl := &Slot{number: k, path: s.slotPath(k), release: unlock}
	if err := writeSlotFile(sl.path, strconv.Itoa(os.Getpid())+"\n"); err != nil {
		unlock()
		return nil, fmt.Errorf("semaphore %s: slot %d: %w", s.name, k, err)
	}
	return sl, nil
}

// writeSlotFile replaces the content of a slot file, which the caller has
// locked. It writes through a second descriptor: closing that one does not
// release the flock(2) lock, which belongs to the first.
func writeSlotFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Semaphore) noSlot() error {
	slots := "slots"
	if s.slots == 1 {
		slots = "slot"
	}
	return fmt.Errorf("semaphore %s in %s (%d %s): %w", s.name, s.dir, s.slots, slots, ErrNoSlot)
}

func (s *Semaphore) gaveUp(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return s.noSlot()
	}
	return ctx.Err()
}

func (s *Semaphore) wrap(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("semaphore %s: %w", s.name, err)
}

// Number returns the slot's number, 1..N.
func (sl *Slot) Number() int { return sl.number }

// Release clears the pid recorded in the slot file and frees the slot.
// Calling it again does nothing.
func (sl *Slot) Release() {
	sl.once.Do(func() {
		_ = writeSlotFile(sl.path, "") // a stale pid is only a stale note
		sl.release()
	})
}

// Status reports the state of slots 1..N and of any other slot file of
// the semaphore's name in its directory (left by users that gave it more
// slots). It takes each free slot's lock in shared mode for an instant to
// tell held from free, so a --nowait Acquire at that very instant may miss
// that slot.
func (s *Semaphore) Status() ([]SlotState, error) {
	numbers := map[int]bool{}
	for k := 1; k <= s.slots; k++ {
		numbers[k] = true
	}
	paths, err := filepath.Glob(filepath.Join(s.dir, globQuote(s.name)+".*.slot"))
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		mid := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), s.name+"."), ".slot")
		if k, err := strconv.Atoi(mid); err == nil && k > 0 && strconv.Itoa(k) == mid {
			numbers[k] = true
		}
	}
	var out []SlotState
	for k := range numbers {
		st, err := s.slotState(k)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

func (s *Semaphore) slotState(k int) (SlotState, error) {
	st := SlotState{Number: k}
	path := s.slotPath(k)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return st, nil // never used: free
	}
	fl := flock.New(path, flock.SetFlag(os.O_RDONLY|syscall.O_NOFOLLOW))
	free, err := fl.TryRLock()
	if err != nil {
		return st, fmt.Errorf("semaphore %s: slot %d: %w", s.name, k, err)
	}
	if free {
		_ = fl.Unlock()
		return st, nil
	}
	st.Held = true
	b, err := os.ReadFile(path)
	if err != nil {
		return st, fmt.Errorf("semaphore %s: slot %d: %w", s.name, k, err)
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
		st.PID = pid
		err := syscall.Kill(pid, 0)
		st.Running = err == nil || errors.Is(err, syscall.EPERM)
	}
	return st, nil
}

// globQuote escapes the characters filepath.Match treats specially.
func globQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
