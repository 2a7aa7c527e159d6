package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"math"
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
// as the journal explains it (see settleTail): a count changed by another
// process is shown as it is, with total and sold to match, and records a
// reboot left beyond the ticket file's version are applied.
func (s *Store) Read() (ticket.State, error) {
	st, file, err := s.read()
	if err != nil {
		return file, err
	}
	return st.state, nil
}

// read is Read's settlement, with the ticket file's own state. A journal
// that does not fit is for Verify to report and for a buy to refuse: a
// reader then sees the ticket file as it is.
func (s *Store) read() (settlement, ticket.State, error) {
	file, _, err := readState(s.path)
	if err != nil || s.opts.Unlocked {
		return settlement{state: file}, file, err
	}
	path := s.files().journal
	j, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		st, err := settleTail(path, file, nil, false, 0, 0, false, time.Now())
		if err != nil {
			return settlement{state: file}, file, nil
		}
		return st, file, nil
	}
	if err != nil {
		return settlement{state: file}, file, ioError("open journal", path, err)
	}
	defer j.Close()
	info, err := j.Stat()
	if err != nil {
		return settlement{state: file}, file, fmt.Errorf("stat %s: %w", path, err)
	}
	st, err := settle(j, path, info.Size(), file, time.Now())
	if err != nil {
		var je *journalError
		if errors.As(err, &je) {
			return settlement{state: file}, file, nil
		}
		return settlement{state: file}, file, err
	}
	return st, file, nil
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
// under it and commits as the package documentation describes.
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
	err := s.update(ctx, func(state ticket.State, _ *journal) (ticket.State, []byte, error) {
		r.State, before = state, state
		next, err := state.Take(qty)
		if err != nil {
			return state, nil, err
		}
		sale := ticket.Sale{Seq: next.Version, Buyer: buyer, Qty: qty, Left: next.Left, Total: next.Total, PID: os.Getpid(), Time: time.Now().UTC()}
		r.Sale, r.State = sale, next // kept if the sale may stand (ErrUnconfirmed)
		return next, sale.AppendLine(nil), nil
	})
	if err != nil && !errors.Is(err, ErrUnconfirmed) && r.Sale.Seq != 0 {
		r.Sale, r.State = ticket.Sale{}, before
	}
	return r, err
}

// change is what a transaction decides (see update): the state it leads
// to and the journal lines that record it, or an error, which changes
// nothing of its own. It may set the journal's noSync off (and only off).
type change func(state ticket.State, j *journal) (next ticket.State, lines []byte, err error)

// update is the one read-decide-write transaction every change goes
// through. Under the lock it reads the ticket file and settles it with the
// journal (see settleTail): records a crashed writer left uncommitted are
// cut, a change made outside ticket is recorded. It calls fn with that
// state, appends what it records after those, fsyncs the journal (the
// commit point) and replaces the ticket file, without fsync, since the
// journal can rebuild it. fn's error is returned, and the settlement is
// still written. If the ticket file cannot be replaced, what was appended
// is cut off again (and that cut fsynced), so that a buy reported as
// failed leaves no sale; when even that fails, the error wraps
// ErrUnconfirmed.
func (s *Store) update(ctx context.Context, fn change) error {
	f, l, err := s.prepare()
	if err != nil {
		return err
	}
	unlock := func() {}
	if !s.opts.Unlocked {
		if unlock, err = Lock(ctx, f.lock, l.perm); err != nil {
			return err
		}
	}
	old, err := s.locked(f, l, nil, fn, nil)
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
// the new version is written to (see writer). done, if not nil, is called
// with the outcome while the journal is still locked, once fn has run (or
// failed to): group commit publishes its outcomes there, so that no other
// leader sees its requests half done.
func (s *Store) locked(f files, l like, pre *os.File, fn change, done func(error)) (old *os.File, err error) {
	var j *journal
	if !s.opts.Unlocked {
		// The journal is locked before the ticket file is read: a process
		// that locked another lock file (someone deleted PATH.lock) must
		// not decide on a version another one is replacing.
		if j, err = openJournal(f.journal, l, s.opts.NoSync); err != nil {
			return nil, err
		}
		defer j.Close()
		if done != nil {
			defer func() { done(err) }()
		}
	}
	stored, info, old, err := readOpenState(f.ticket)
	if err != nil {
		return nil, err
	}
	uid, gid := owner(info)
	if s.opts.Unlocked {
		// Without the lock there is no journal: the file is all there is,
		// and it is written durably. Unlocked writers must not share one
		// temporary file: that would tear the file instead of merely
		// losing updates.
		next, _, err := fn(stored, nil)
		if err != nil || next.Version == stored.Version {
			return old, err
		}
		tmp := fmt.Sprintf("%s.%d", f.tmp, os.Getpid())
		return old, writer{noSync: s.opts.NoSync}.replace(f.ticket, tmp, next.Encode(), info.Mode().Perm(), uid, gid)
	}
	size, err := j.size()
	if err != nil {
		return old, err
	}
	st, err := settle(j.f, j.path, size, stored, time.Now())
	if err != nil {
		return old, err
	}
	if len(st.rolled) > 0 {
		// Records a restart left beyond the ticket file are committed:
		// they go into the ticket file first, before this boot's first
		// append marks the journal as written in this boot, which would
		// make them look like a crashed buyer's.
		if err := (writer{noSync: true}).replace(f.ticket, f.tmp, st.state.Encode(), info.Mode().Perm(), uid, gid); err != nil {
			return old, err
		}
		s.warn(st.note(f.ticket))
		if st, err = settle(j.f, j.path, size, st.state, time.Now()); err != nil {
			return old, err
		}
	}
	if err := j.recoverLocked(st); err != nil {
		return old, err
	}
	s.warn(removeStale(f.tmp))
	next, lines, ferr := fn(st.state, j)
	if ferr != nil {
		next, lines = st.state, nil
	}
	if len(lines) == 0 && !st.changes() {
		s.warn(st.note(f.ticket)) // cut only
		return old, ferr
	}
	var records []byte
	for _, r := range st.add {
		records = r.AppendLine(records)
	}
	records = append(records, lines...)
	if err := j.append(records); err != nil {
		// A buy reported as failed must leave no sale: take back what
		// may have been written.
		if uerr := s.undo(j, st.end, err, len(lines) > 0); uerr != nil {
			return old, uerr
		}
		return old, err
	}
	s.warn(st.note(f.ticket))
	w := writer{noSync: true, pre: pre} // the journal made it durable
	rerr := w.replace(f.ticket, f.tmp, next.Encode(), info.Mode().Perm(), uid, gid)
	if rerr == nil {
		return old, ferr
	}
	// The records are in the journal but the ticket file does not show
	// them: take them back, so that a failed buy sold nothing.
	if uerr := s.undo(j, st.end, rerr, len(lines) > 0); uerr != nil {
		return old, uerr
	}
	return old, rerr
}

// undo cuts the journal back to size after cause made a change fail. If
// it cannot, the sales appended stand (the next lock holder completes
// them) and it returns an error wrapping ErrUnconfirmed that says so.
func (s *Store) undo(j *journal, size int64, cause error, sold bool) error {
	note, err := j.undo(size)
	s.warn(note)
	switch {
	case err == nil:
		return nil
	case !sold:
		// Only the settlement's records: the next writer settles again.
		s.warn(fmt.Sprintf("%v (after %v)", err, cause))
		return nil
	}
	return fmt.Errorf("%w: the sale is in the journal %s beyond the ticket file: %w, and taking it back failed too: %v; the next buy takes it back, unless the machine restarts first", ErrUnconfirmed, j.path, cause, err)
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

// Init creates the ticket file with n tickets and a journal that starts
// with them. It refuses with ErrExists if the sale exists (its ticket
// file, or a journal holding records beside a missing one), unless force,
// which resets it under the lock. A journal that holds sales is never
// deleted: it is renamed to PATH.journal.YYYYMMDDTHHMMSS.NNNNNNNNNZ first,
// and the returned archive names it ("" when there was none).
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

// archiveJournal renames a journal that holds more than an init record to
// a name with the current time, and returns that name ("" if there was
// nothing to keep, in which case it removes the journal).
func archiveJournal(path string) (string, error) {
	n, _, err := journalRecords(path)
	if err != nil {
		return "", err
	}
	if n == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", ioError("remove", path, err)
		}
		return "", nil
	}
	archive := path + "." + time.Now().UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(path, archive); err != nil {
		return "", fmt.Errorf("keep old journal: %w", err)
	}
	return archive, nil
}

// journalRecords reports how many records beyond an init record the end
// of the journal at path shows (0 or more; it stops reading at 2), and the
// last whole record. A missing or empty journal has none.
func journalRecords(path string) (int, ticket.Sale, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, ticket.Sale{}, nil
	}
	if err != nil {
		return 0, ticket.Sale{}, ioError("open journal", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, ticket.Sale{}, ioError("stat", path, err)
	}
	n := 0
	entries, _, _, err := tailRecords(f, path, info.Size(), func(r ticket.Sale) bool {
		if r.Kind != ticket.KindInit {
			n++
		}
		return n >= 2 || r.Kind == ticket.KindInit
	})
	if err != nil || len(entries) == 0 {
		return n, ticket.Sale{}, err
	}
	return n, entries[len(entries)-1].Sale, nil
}

// Sales yields the journal's committed records in order, without the
// lock: every kind (see ticket.Kind), up to the version the ticket file
// has reached, and those a reboot left beyond it. Lines beyond it written
// this boot are not yielded (one being appended right now, or one a
// crashed buyer left), nor a change made outside ticket that no writer has
// recorded yet. An error (the ticket file or a committed line is invalid,
// a file cannot be read) ends the sequence.
func (s *Store) Sales() iter.Seq2[ticket.Sale, error] {
	return func(yield func(ticket.Sale, error) bool) {
		st, file, err := s.read()
		if err != nil {
			yield(ticket.Sale{}, err)
			return
		}
		limit := file.Version + int64(len(st.rolled))
		if !file.Stored() {
			limit = math.MaxInt64 // the journal's last record is the anchor
		}
		for r, err := range readRecords(s.files().journal) {
			var je *journalError
			switch {
			case err != nil && errors.As(err, &je) && je.unfinished:
				return // a line being appended, or left by a crash
			case err != nil:
				yield(ticket.Sale{}, err)
				return
			case r.Seq > limit:
				return
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}

// Restore replaces the sale with state and a journal of its records, as
// ticket copy does: under the lock it writes the journal (starting with an
// init record, made from state and the records when they have none),
// fsyncs it, then replaces the ticket file, durably, which is the commit
// point. It refuses with ErrExists if the sale exists (see Init), unless
// force; then an old journal that holds sales is renamed (archive names
// it), never deleted, and a ticket file it cannot parse is never
// overwritten.
func (s *Store) Restore(ctx context.Context, state ticket.State, records []ticket.Sale, force bool) (archive string, err error) {
	f := s.files()
	l := like{uid: -1} // a new sale: the umask decides
	exists := func() error {
		info, err := os.Stat(f.ticket)
		if errors.Is(err, fs.ErrNotExist) {
			if n, last, err := journalRecords(f.journal); err != nil {
				return err
			} else if n > 0 && !force {
				return sentinelError{fmt.Sprintf("%s does not exist, but its journal %s holds records (the last #%d, %d left): the sale exists: rebuild its ticket file with ticket repair (init --force would start a new sale and sell its tickets again; the old journal would be kept)", s.path, f.journal, last.Seq, last.Left), ErrExists}
			}
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
	lines := journalOf(state, records)
	unlock, err := Lock(ctx, f.lock, l.perm)
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := exists(); err != nil { // again, under the lock
		return "", err
	}
	old, err := openJournal(f.journal, l, true) // held while it is archived
	if err != nil {
		return "", err
	}
	defer old.Close()
	// The old journal goes first: a fresh ticket file beside an old
	// journal would make its records look uncommitted.
	if archive, err = archiveJournal(f.journal); err != nil {
		return "", err
	}
	j, err := openJournal(f.journal, l, s.opts.NoSync)
	if err != nil {
		return archive, err
	}
	defer j.Close()
	if err := j.append(lines); err != nil {
		return archive, err
	}
	w := writer{noSync: s.opts.NoSync}
	return archive, w.replace(f.ticket, f.tmp, state.Encode(), l.perm, l.uid, l.gid)
}

// journalOf returns the journal lines of a sale restored at state from
// records: an init record first (the records' own, or one made from the
// first record and state), then every record as given, with its total
// filled in where the source did not record it and the records follow one
// another so far. Records that do not follow are written as they are, for
// Verify to report, as Restore promises.
func journalOf(state ticket.State, records []ticket.Sale) []byte {
	var books ticket.State
	rest := records
	switch {
	case len(records) > 0 && records[0].Kind == ticket.KindInit:
		books, _ = records[0].Books()
		rest = records[1:]
	case len(records) > 0:
		first := records[0]
		total := state.Total
		for _, r := range records {
			if r.Kind == ticket.KindRestock {
				total -= r.Qty
			}
		}
		books = ticket.At(first.Seq-1, first.Left+first.Taken(), total)
	default:
		books = ticket.At(state.Version, state.Left, state.Total)
	}
	init := ticket.Sale{Seq: books.Version, Kind: ticket.KindInit, Left: books.Left, Total: books.Total, Time: time.Now().UTC()}
	if len(records) > 0 && records[0].Kind == ticket.KindInit {
		init = records[0]
	}
	lines := init.AppendLine(nil)
	following := true
	for _, r := range rest {
		if following {
			next, err := books.Apply(r)
			if following = err == nil; following {
				r.Total, books = next.Total, next
			}
		}
		lines = r.AppendLine(lines)
	}
	return lines
}
