package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"time"

	"github.com/ticketd/ticket/ticket"
)

// Options tune a Store. The zero value is the safe default.
type Options struct {
	// NoSync skips every fsync: buys get several times faster, and a crash
	// of the machine (not of a process) may lose the last sales or leave
	// the files out of step. Exclusion and atomic visibility still hold.
	NoSync bool

	// Unlocked skips the lock and the journal: buyers read, decide and
	// write without exclusion. It is UNSAFE and exists only to show what
	// the lock prevents (lost updates, overselling). On Redis it skips
	// the script the same way: read, decide, write back, no journal.
	Unlocked bool

	// NoGroup turns group commit off: each buy takes the lock and commits
	// alone, as any process that holds the lock does. Group commit (see
	// Store.Buy) is used where it is available unless this is set.
	NoGroup bool

	// Warn receives one-line notes about repairs made under the lock, such
	// as a crashed buyer's committed sale written to the ticket file, or its
	// unfinished journal line cut. Nil discards them.
	Warn func(note string)

	// RequestID is the request id of the buys made through a Redis sale
	// (see Redis.BuyRequest); "" gives each buy a fresh one. The file
	// backend has no use for it: its buys are never retried blindly.
	RequestID string
}

// Store is one ticket sale on disk. Its methods may be called from many
// processes at once; within one process, from many goroutines.
type Store struct {
	path string
	opts Options
}

// Open returns the Store for the ticket file at path. It does no I/O: a
// missing file is reported by the first method that needs it.
func Open(path string, opts Options) *Store {
	return &Store{path: path, opts: opts}
}

// Path returns the ticket file's path as given to Open.
func (s *Store) Path() string { return s.path }

// files are the names of a sale's files, beside the ticket file's target
// when the ticket file is a symlink.
type files struct {
	ticket, lock, journal, tmp string
}

func (s *Store) files() files {
	p := target(s.path)
	return files{ticket: p, lock: p + ".lock", journal: p + ".journal", tmp: p + ".tmp"}
}

// target resolves symbolic links in path. A dangling link resolves to the
// file it names, so that Init creates the target instead of replacing the
// link.
func target(path string) string {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		return real
	}
	for range 40 { // the kernel's own limit on links followed
		dest, err := os.Readlink(path)
		if err != nil {
			return path
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(path), dest)
		}
		path = dest
	}
	return path
}

// LockPath returns the path of the lock file that guards the sale.
func (s *Store) LockPath() string { return s.files().lock }

// JournalPath returns the path of the sales journal.
func (s *Store) JournalPath() string { return s.files().journal }

// Read returns the current state without taking the lock: the ticket file
// (every write replaces it by rename, so a reader sees one whole version)
// with any sales the journal committed beyond it applied, as after a crash
// between a buyer's commit and its update of the ticket file.
func (s *Store) Read() (ticket.State, error) {
	st, _, err := readState(s.path)
	if err != nil || s.opts.Unlocked {
		return st, err
	}
	path := s.files().journal
	j, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, ioError("open journal", path, err)
	}
	defer j.Close()
	info, err := j.Stat()
	if err != nil {
		return st, fmt.Errorf("stat %s: %w", path, err)
	}
	rolled, _, _, err := scanTail(j, path, info.Size(), st)
	if err != nil {
		// A journal that does not fit is for Verify to report and for a
		// buy to refuse; a reader still sees the ticket file.
		var je *journalError
		if errors.As(err, &je) {
			return st, nil
		}
		return st, err
	}
	return rolled, nil
}

// Receipt is the outcome of a buy.
type Receipt struct {
	Sale  ticket.Sale  // the sale made; zero when nothing was bought
	State ticket.State // the state after the buy, or the one that refused it

	// Replayed is set when the buy's request id had already been answered:
	// this is that original outcome, and nothing was sold now (Redis only).
	Replayed bool
}

// Buy sells qty tickets to buyer if at least qty are left, all or nothing.
// It waits for the lock as Lock does with ctx, re-reads the ticket file
// under the lock and commits as the package documentation describes.
//
// It returns ticket.ErrSoldOut (with the Receipt's State filled in) when
// fewer than qty are left, ErrLocked when the lock was not had in time,
// errors wrapping ticket.ErrInvalid for a ticket file or journal it refuses
// (untouched), and ErrUnconfirmed for a sale that was committed but not
// confirmed durable. Any other error means nothing was sold.
func (s *Store) Buy(ctx context.Context, buyer string, qty int64) (Receipt, error) {
	if qty < 1 {
		return Receipt{}, ticket.ErrQuantity
	}
	if err := ticket.CheckBuyer(buyer); err != nil {
		return Receipt{}, err
	}
	if r, handled, err := s.groupBuy(ctx, buyer, qty); handled {
		return r, err
	}
	var (
		r      Receipt
		before ticket.State // the state the buy was decided on
	)
	err := s.update(ctx, func(state ticket.State, j *journal) (ticket.State, error) {
		r.State, before = state, state
		next, err := state.Take(qty)
		if err != nil {
			return state, err
		}
		sale := ticket.Sale{Seq: next.Version, Buyer: buyer, Qty: qty, Left: next.Left, PID: os.Getpid(), Time: time.Now().UTC()}
		r.Sale, r.State = sale, next // kept if the sale may stand (ErrUnconfirmed)
		if j != nil {
			if err := j.append(sale.AppendLine(nil)); err != nil {
				return state, err
			}
		}
		return next, nil
	})
	if err != nil && !errors.Is(err, ErrUnconfirmed) && r.Sale.Seq != 0 {
		r.Sale, r.State = ticket.Sale{}, before
	}
	return r, err
}

// update is the one read-decide-write transaction every change goes
// through. Under the lock it reads the ticket file, rolls it forward over
// the sales the journal committed beyond it (see journal.recover), calls fn
// with that state and the journal, and, if fn returns a new state (one whose
// Version differs), replaces the ticket file with it. fn commits by
// appending its sales to the journal with journal.append, which fsyncs;
// update then replaces the ticket file without fsync, since the journal can
// rebuild it. fn's error aborts without writing. If the ticket file cannot be
// replaced, whatever fn appended is cut off again (and that cut fsynced), so
// that a buy reported as failed leaves no sale; when even that fails, the
// error wraps ErrUnconfirmed: the sale stands, and the next lock holder
// completes it.
func (s *Store) update(ctx context.Context, fn func(ticket.State, *journal) (ticket.State, error)) error {
	f, l, err := s.prepare()
	if err != nil {
		return err
	}
	unlock := func() {}
	if !s.opts.Unlocked {
		if unlock, err = Lock(ctx, f.lock, l.perm); err != nil {
			return err
		}
		resetStale(f.lock)
	}
	old, err := s.locked(f, l, nil, fn)
	unlock()
	closeAfterUnlock(old)
	return err
}

// closeAfterUnlock closes the replaced version of the ticket file that
// locked kept open, once the lock is released: the filesystem frees its
// blocks now, outside the critical section.
func closeAfterUnlock(old *os.File) {
	if old != nil {
		old.Close()
	}
}

// prepare returns the sale's files and what new files beside the ticket
// file copy, and creates the lock file if it is missing.
func (s *Store) prepare() (files, like, error) {
	f := s.files()
	info, err := os.Stat(s.path)
	if err != nil {
		return f, like{}, openError(s.path, err) // names a dangling link as such
	}
	l := likeFile(info)
	if !s.opts.Unlocked {
		// The lock file is created once. Before creating it, refuse what
		// cannot be read, so that nothing appears beside a refused file;
		// once it exists, the read under the lock is the check.
		if _, err := os.Stat(f.lock); errors.Is(err, fs.ErrNotExist) {
			if _, _, err := loadState(f.ticket); err != nil {
				return f, l, err
			}
			if _, err := createFile(f.lock, l); err != nil {
				return f, l, ioError("create lock file", f.lock, err)
			}
		}
	}
	return f, l, nil
}

// locked is update's transaction, run with the lock held (or without it,
// when Options.Unlocked). It returns the ticket file it read still open,
// for closeAfterUnlock. pre, if not nil, is the unnamed temporary file
// the new version is written to (see writer).
func (s *Store) locked(f files, l like, pre *os.File, fn func(ticket.State, *journal) (ticket.State, error)) (old *os.File, err error) {
	stored, info, old, err := readOpenState(f.ticket)
	if err != nil {
		return nil, err
	}
	state := stored
	var j *journal
	if !s.opts.Unlocked {
		if j, err = openJournal(f.journal, l, s.opts.NoSync); err != nil {
			return old, err
		}
		defer j.Close()
		var note string
		if state, _, note, err = j.recover(stored); err != nil {
			return old, err
		}
		s.warn(note)
		s.warn(removeStale(f.tmp))
	}
	var size int64
	if j != nil {
		if size, err = j.size(); err != nil {
			return old, err
		}
	}
	next, err := fn(state, j)
	if err != nil {
		// Take back whatever fn appended before it failed (a write or an
		// fsync that failed): a buy reported as failed must leave no sale.
		if uerr := s.undo(j, size, err); uerr != nil {
			return old, uerr
		}
		next = state // nothing new, but a rolled-forward state is still written
	}
	if next.Version == stored.Version {
		return old, err
	}
	tmp := f.tmp
	if s.opts.Unlocked {
		// Unlocked writers must not share one temporary file: that would
		// tear the file instead of merely losing updates.
		tmp = fmt.Sprintf("%s.%d", f.tmp, os.Getpid())
	}
	uid, gid := owner(info)
	// The journal made the sales durable; without it (unlocked), the file
	// is all there is, and it is written durably.
	w := writer{noSync: s.opts.NoSync || j != nil, pre: pre}
	rerr := w.replace(f.ticket, tmp, next.Encode(), info.Mode().Perm(), uid, gid)
	switch {
	case rerr == nil:
		return old, err
	case j == nil:
		return old, rerr
	case err != nil || next.Version == state.Version:
		// Only rolled forward: the journal holds those sales already, and
		// the next lock holder writes the ticket file again.
		s.warn(rerr.Error())
		return old, err
	}
	// fn's sales are in the journal but the ticket file does not show them:
	// take them back, so that a failed buy sold nothing.
	if uerr := s.undo(j, size, rerr); uerr != nil {
		return old, uerr
	}
	return old, rerr
}

// undo cuts the journal back to size after cause made a change fail. If
// it cannot, the sales appended stand (the next lock holder completes
// them) and it returns an error wrapping ErrUnconfirmed that says so.
func (s *Store) undo(j *journal, size int64, cause error) error {
	if j == nil {
		return nil
	}
	note, err := j.undo(size)
	s.warn(note)
	if err != nil {
		return fmt.Errorf("%w: the sale may be in the journal %s: %w, and taking it back failed too: %v; the next buy completes it", ErrUnconfirmed, j.path, cause, err)
	}
	return nil
}

// warn passes a non-empty note to Options.Warn.
func (s *Store) warn(note string) {
	if note != "" && s.opts.Warn != nil {
		s.opts.Warn(note)
	}
}

// removeStale removes the PATH.tmp a writer killed before its rename left,
// so that none outlives the next lock holder, even one that writes nothing
// (a sold-out buy). It returns a note saying what it did or could not do.
func removeStale(tmp string) string {
	if _, err := os.Lstat(tmp); err != nil {
		return ""
	}
	err := fault(stepTempRemove)
	if err == nil {
		err = os.Remove(tmp)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ioError("remove leftover", tmp, err).Error()
	}
	return fmt.Sprintf("%s: removed what a crashed writer left", tmp)
}

// Init creates the ticket file with n tickets and an empty journal. It
// refuses with ErrExists if the ticket file exists, unless force, which
// resets it under the lock. A journal that holds sales is never deleted:
// it is renamed to PATH.journal.YYYYMMDDTHHMMSS.NNNNNNNNNZ first, and the
// returned archive names it ("" when there was none).
func (s *Store) Init(ctx context.Context, n int64, force bool) (state ticket.State, archive string, err error) {
	state, err = ticket.New(n)
	if err != nil {
		return state, "", err
	}
	archive, err = s.Restore(ctx, state, nil, force)
	return state, archive, err
}

// existsError is ErrExists for path, in one line that says what to do.
func existsError(path string) error {
	return sentinelError{path + " already exists (use --force to reset it)", ErrExists}
}

// archiveJournal renames a journal that holds anything to a name with the
// current time, and returns that name ("" if there was nothing to keep).
func archiveJournal(path string) (string, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && info.Size() == 0) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("stat journal: %w", err)
	}
	archive := path + "." + time.Now().UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(path, archive); err != nil {
		return "", fmt.Errorf("keep old journal: %w", err)
	}
	return archive, nil
}

// Sales yields the committed sales in order, without the lock: those up
// to the version the ticket file has reached. Lines beyond it are not
// sales (one being appended right now, or one a crashed buyer left) and
// are not yielded. An error (the ticket file or a committed line is
// invalid, a file cannot be read) ends the sequence.
func (s *Store) Sales() iter.Seq2[ticket.Sale, error] {
	return func(yield func(ticket.Sale, error) bool) {
		state, err := s.Read()
		if err != nil {
			yield(ticket.Sale{}, err)
			return
		}
		var last int64
		for sale, err := range readSales(s.files().journal) {
			var je *journalError
			switch {
			case err != nil && errors.As(err, &je) && je.unfinished && last >= state.Version:
				return // a line being appended, or left by a crash
			case err != nil:
				yield(ticket.Sale{}, err)
				return
			case sale.Seq > state.Version:
				return
			}
			last = sale.Seq
			if !yield(sale, nil) {
				return
			}
		}
	}
}

// Restore replaces the sale with state and a journal holding sales, as
// ticket copy does: under the lock it writes the journal, fsyncs it, then
// replaces the ticket file, which is the commit point. It refuses with
// ErrExists if the ticket file exists, unless force; then, as with Init,
// an old journal that holds sales is renamed (archive names it), never
// deleted, and a ticket file it cannot parse is never overwritten.
func (s *Store) Restore(ctx context.Context, state ticket.State, sales []ticket.Sale, force bool) (archive string, err error) {
	f := s.files()
	l := like{uid: -1} // a new sale: the umask decides
	exists := func() error {
		info, err := os.Stat(f.ticket)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return ioError("stat", s.path, err)
		}
		if !info.Mode().IsRegular() {
			return invalidFile(s.path, "not a regular file")
		}
		if !force {
			return existsError(s.path)
		}
		// --force replaces a sale, not a file it cannot read: never
		// overwrite what could not be parsed.
		if _, _, err := readState(f.ticket); err != nil {
			return fmt.Errorf("%w (not replacing it; move it away first if it is not needed)", err)
		}
		l = likeFile(info)
		return nil
	}
	if err := exists(); err != nil {
		return "", err
	}
	unlock, err := Lock(ctx, f.lock, l.perm)
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := exists(); err != nil { // again, under the lock
		return "", err
	}
	// The old journal goes first: a fresh ticket file beside an old
	// journal would make its sales look uncommitted.
	if archive, err = archiveJournal(f.journal); err != nil {
		return "", err
	}
	j, err := openJournal(f.journal, l, s.opts.NoSync)
	if err != nil {
		return archive, err
	}
	defer j.Close()
	var buf []byte
	for _, sale := range sales {
		buf = sale.AppendLine(buf)
	}
	if err := j.append(buf); err != nil {
		return archive, err
	}
	w := writer{noSync: s.opts.NoSync}
	return archive, w.replace(f.ticket, f.tmp, state.Encode(), l.perm, l.uid, l.gid)
}
