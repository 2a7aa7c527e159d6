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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/store/lock"
	"github.com/ticketd/ticket/ticket"
)

// Options tune a Store. The zero value is the safe default.
type Options struct {
	// NoSync skips every fsync: buys get several times faster, and a crash
	// of the machine (not of a process) may lose the last sales or leave
	// the files out of step. Exclusion and atomic visibility still hold.
	NoSync bool

	// NoGroup turns group commit off: each buy takes the lock and commits
	// alone, as any process that holds the lock does. Group commit (see
	// package store/group) is used where it is available unless this is
	// set.
	NoGroup bool

	// NoWait makes every method that needs the lock give up at once, with
	// an error wrapping ErrLocked, when another process holds it, instead
	// of waiting until its context is done.
	NoWait bool

	// Warn receives one-line notes about repairs made under the lock, such
	// as a crashed buyer's committed sale written to the ticket file, or its
	// unfinished journal line cut. Nil discards them.
	Warn func(note string)
}

// Store is one ticket sale on disk. Its methods may be called from many
// processes at once; within one process, from many goroutines.
type Store struct {
	path string
	opts Options
}

// kept is a sale's lock file and journal, kept open between transactions
// (see lock.Kept): a process that buys again and again (ticket bench's
// buyers, a long-running program) spares an open and a close of each per
// transaction. Every Store of the sale in the process shares them (see
// keptFiles).
type kept struct {
	lock, journal *lock.Kept
}

// keptFiles are the kept files of the sales this process bought from, by
// their lock file's path: two descriptors per sale, however many Stores a
// program opens for it (one per request, never closed, say), and at most
// maxKept sales' at once.
var keptFiles = struct {
	sync.Mutex
	m map[string]*kept
}{m: map[string]*kept{}}

// maxKept bounds the sales whose files a process keeps open: past it, the
// kept files are closed (a lock in use closes its descriptor when it is
// released) and kept again as they are used.
const maxKept = 64

// keep returns the kept files of the sale at p.
func keep(p paths) *kept {
	keptFiles.Lock()
	defer keptFiles.Unlock()
	if k := keptFiles.m[p.lock]; k != nil {
		return k
	}
	if len(keptFiles.m) >= maxKept {
		for path, k := range keptFiles.m {
			k.close()
			delete(keptFiles.m, path)
		}
	}
	k := &kept{lock: lock.Keep(p.lock), journal: lock.KeepFile(p.journal, os.O_RDWR)}
	keptFiles.m[p.lock] = k
	return k
}

// keeps reports whether this process keeps the lock file at path open.
func keeps(path string) bool {
	keptFiles.Lock()
	defer keptFiles.Unlock()
	return keptFiles.m[path] != nil
}

func (k *kept) close() error {
	return errors.Join(k.lock.Close(), k.journal.Close())
}

// Close closes the sale's lock file and journal, which this process keeps
// open between transactions for every Store of the sale. A Store may still
// be used after Close, as may the sale's other Stores: the next
// transaction opens them again.
func (s *Store) Close() error {
	p := s.paths()
	keptFiles.Lock()
	k := keptFiles.m[p.lock]
	delete(keptFiles.m, p.lock)
	keptFiles.Unlock()
	if k == nil {
		return nil
	}
	return k.close()
}

// Open returns the Store for the ticket file at path. It does no I/O: a
// missing file is reported by the first method that needs it.
func Open(path string, opts Options) *Store {
	return &Store{path: path, opts: opts}
}

// Path returns the ticket file's path as given to Open.
func (s *Store) Path() string { return s.path }

// LockPath returns the path of the lock file that guards the sale.
func (s *Store) LockPath() string { return s.paths().lock }

// JournalPath returns the path of the sales journal.
func (s *Store) JournalPath() string { return s.paths().journal }

// paths are the names of a sale's files, beside the ticket file's target
// when the ticket file is a symlink.
type paths struct {
	ticket, lock, journal, tmp, spare, holders, holds string
}

func (s *Store) paths() paths {
	p, _ := s.pathsInfo()
	return p
}

// pathsInfo is paths, with the ticket file's FileInfo when looking for
// links found it (not a link), and nil otherwise.
func (s *Store) pathsInfo() (paths, fs.FileInfo) {
	p, info := targetInfo(s.path)
	return paths{ticket: p, lock: p + ".lock", journal: p + ".journal", tmp: p + ".tmp", spare: p + ".spare", holders: p + ".holders", holds: p + ".holds"}, info
}

// target resolves symbolic links in path. A dangling link resolves to the
// file it names, so that Init creates the target instead of replacing the
// link.
func target(path string) string {
	p, _ := targetInfo(path)
	return p
}

// targetInfo is target, with path's FileInfo when path is no link (nil
// otherwise).
func targetInfo(path string) (string, fs.FileInfo) {
	// Only a clean path without "..": through a link to a directory,
	// "sub/../x" is not where it reads.
	clean := filepath.Clean(path) == path && !strings.Contains(path, "..")
	if fi, err := os.Lstat(path); clean && err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		// Not a link: its siblings are the sale's files, whatever links
		// the directories above are (one lstat instead of one per part).
		return path, fi
	}
	return resolve(path), nil
}

// resolve is target for a path that is a link, or missing.
func resolve(path string) string {
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

// lock takes the sale's lock, waiting until ctx is done, or trying once
// with Options.NoWait.
func (s *Store) lock(ctx context.Context, p paths, l files.Like) (unlock func(), err error) {
	k := keep(p).lock
	if !s.opts.NoWait {
		return k.Lock(ctx, l)
	}
	unlock, ok, err := k.TryLock(l)
	if err == nil && !ok {
		err = fmt.Errorf("%s: %w", p.lock, ErrLocked)
	}
	return unlock, err
}

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

// Limit returns the sale's per-buyer limit, 0 for none, as the ticket
// file shows it: one read of a small file, where Read also reads the
// journal's end (what a command line asks before each buy). A ticket file
// another program wrote back with "count" alone has lost its "limit": the
// journal says it then, through Read.
func (s *Store) Limit(ctx context.Context) (int64, error) {
	file, _, err := readState(s.path)
	if err != nil || file.Stored() {
		return file.Limit(), err
	}
	st, err := s.Read()
	return st.Limit(), err
}

// read is Read's settlement, with the ticket file's own state. A journal
// that does not fit is for Verify to report and for a buy to refuse: a
// reader then sees the ticket file as it is.
func (s *Store) read() (settlement, ticket.State, error) {
	file, _, err := readState(s.path)
	if err != nil {
		return settlement{state: file}, file, err
	}
	p := s.paths()
	st, err := settleFile(p.journal, file)
	var je *journalError
	if errors.As(err, &je) {
		return settlement{state: file}, file, nil
	}
	if err != nil {
		return settlement{state: file}, file, err
	}
	// Expired holds are counted as released, recorded by the next writer.
	if err := st.lapseReading(p.holds, p.journal, time.Now()); err != nil {
		return st, file, err
	}
	return st, file, nil
}

// Buy sells qty tickets to buyer if at least qty are left, all or nothing.
// It waits for the lock until ctx is done (or tries once, with
// Options.NoWait), re-reads the ticket file under it and commits as the
// package documentation describes; buyers that find the lock held are
// committed together (see package store/group).
//
// It returns ticket.ErrSoldOut (with the Receipt's State filled in) when
// fewer than qty are left, ticket.ErrLimit when the sale's per-buyer limit
// would be passed, ErrLocked when the lock was not had in time,
// errors wrapping ticket.ErrInvalid for a ticket file or journal it refuses
// (untouched), and ErrUnconfirmed for a sale that was committed but not
// confirmed durable. Any other error means nothing was sold.
func (s *Store) Buy(ctx context.Context, buyer string, qty int64) (Receipt, error) {
	if err := ticket.CheckRequest(buyer, qty); err != nil {
		return Receipt{}, err
	}
	if r, err := s.groupBuy(ctx, buyer, qty); !errors.Is(err, errAlone) {
		return r, err
	}
	var (
		r      Receipt
		before ticket.State // the state the buy was decided on
	)
	err := s.update(ctx, func(state ticket.State, j *journal) (ticket.State, []ticket.Record, error) {
		r.State, before = state, state
		if err := j.limitFor(state, buyer, qty); err != nil {
			return state, nil, s.named(err)
		}
		next, sale, err := state.Next(ticket.Record{Kind: ticket.KindSale, Buyer: buyer, Qty: qty, PID: os.Getpid(), Time: time.Now().UTC()})
		if errors.Is(err, ticket.ErrSoldOut) {
			return state, nil, err
		} else if err != nil { // the file cannot take a sale (its version cannot grow)
			return state, nil, fmt.Errorf("%s: %w", s.path, err)
		}
		r.Sale, r.State = sale, next // kept if the sale may stand (ErrUnconfirmed)
		return next, []ticket.Record{sale}, nil
	})
	if err != nil && !errors.Is(err, ErrUnconfirmed) && r.Sale.Seq != 0 {
		r.Sale, r.State = ticket.Record{}, before
	}
	return r, err
}

// change is what a transaction decides (see update): the state it leads
// to and the journal records that record it, or an error, which changes
// nothing of its own. It may set the journal's noSync off (and only off).
type change func(state ticket.State, j *journal) (next ticket.State, records []ticket.Record, err error)

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
	p, l, err := s.prepare()
	if err != nil {
		return err
	}
	unlock, err := s.lock(ctx, p, l)
	if err != nil {
		return err
	}
	defer unlock()
	return s.locked(p, l, fn, nil)
}

// prepare returns the sale's files and what new files beside the ticket
// file copy, and creates the lock file if it is missing.
func (s *Store) prepare() (paths, files.Like, error) {
	p, info := s.pathsInfo()
	if info == nil {
		var err error
		if info, err = os.Stat(s.path); err != nil {
			return p, files.Like{}, openError(s.path, err) // names a dangling link as such
		}
	}
	l := files.LikeFile(info)
	// The lock file is created once. Before creating it, refuse what
	// cannot be read, so that nothing appears beside a refused file; once
	// it exists, the read under the lock is the check.
	if keeps(p.lock) {
		// It did exist: if someone deleted it since, the lock makes it
		// again, before the read under the lock refuses what it refuses.
		return p, l, nil
	}
	if _, err := os.Stat(p.lock); errors.Is(err, fs.ErrNotExist) {
		if _, _, err := loadState(p.ticket); err != nil {
			return p, l, err
		}
		if _, err := files.Create(p.lock, l); err != nil {
			return p, l, files.Error("create lock file", p.lock, err)
		}
	}
	return p, l, nil
}

// locked is update's transaction, run with the lock held. done, if not
// nil, is called with the outcome while the journal is still locked, once
// fn has run (or failed to): group commit publishes its outcomes there, so
// that no other leader sees its requests half done.
func (s *Store) locked(p paths, l files.Like, fn change, done func(error)) (err error) {
	// The journal is locked before the ticket file is read: a process that
	// locked another lock file (someone deleted PATH.lock) must not decide
	// on a version another one is replacing.
	j, err := openKeptJournal(p.journal, keep(p).journal, l, s.opts.NoSync)
	if err != nil {
		return err
	}
	defer j.Close()
	if done != nil {
		defer func() { done(err) }()
	}
	stored, info, old, err := readOpenState(p.ticket)
	if err != nil {
		return err
	}
	// Closed before the unlock: once swapped out, the version read is the
	// spare the next commit writes over, which it may only do when no
	// process has it open.
	defer old.Close()
	like := files.LikeFile(info)
	size, err := j.size()
	if err != nil {
		return err
	}
	st, err := settle(j, j.f, j.path, size, stored, time.Now())
	if err != nil {
		return err
	}
	if err := j.recoverLocked(st); err != nil {
		return err
	}
	s.warn(removeStale(p.tmp))
	held := st.state.Held() // at the journal's committed end (what settle adds holds none)
	j.openHold = func() error { return s.openHolds(p, like, j, st, held) }
	j.settled = st.committed
	defer func() {
		if j.holds != nil {
			if j.holds.Rebuilds > 0 && !j.holds.Created {
				s.warn(fmt.Sprintf("%s: rebuilt from the journal (damaged, left half written, or not of this journal's history)", p.holds))
			}
			j.holds.Close()
		}
	}()
	if st.state.Held() > 0 {
		x, err := j.holdIndex()
		if err != nil {
			return err
		}
		if err := st.lapse(x, time.Now()); err != nil {
			return err
		}
		// Closed in this transaction: a confirm of a lapsed hold finds it
		// released.
		for _, r := range st.lapsed {
			if err := x.Stage(r); err != nil {
				return err
			}
		}
	}
	j.lapsed = st.lapsed
	if st.state.Limit() != 0 {
		if j.holdings, err = s.openHoldings(p, like, j, st); err != nil {
			return err
		}
		defer func() {
			if j.holdings.Rebuilds > 0 && !j.holdings.Created {
				s.warn(fmt.Sprintf("%s: rebuilt from the journal (damaged, or not of this journal's history)", p.holders))
			}
			j.holdings.Close()
		}()
	}
	next, records, ferr := fn(st.state, j)
	if ferr != nil {
		next, records = st.state, nil
	}
	if len(records) == 0 && !st.changes() {
		s.warn(st.note(p.ticket)) // cut only
		return ferr
	}
	var lines []byte
	for _, r := range slices.Concat(st.add, st.lapsed, records) {
		lines = r.AppendLine(lines)
	}
	if err := j.append(lines, st.committed); err != nil {
		// A buy reported as failed must leave no sale: take back what
		// may have been written.
		if uerr := s.undo(j, st.end, err, len(records) > 0); uerr != nil {
			return uerr
		}
		return err
	}
	s.warn(st.note(p.ticket))
	var displaced []byte
	if len(st.cut) > 0 {
		// A buyer that died before its swap left its version, never
		// committed, in the spare: written over in place, the spare
		// could come back after a power cut with that content, whose
		// version number a later record now has. A new file instead.
		if err := os.Remove(p.spare); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.warn(files.Error("remove", p.spare, err).Error())
		}
	}
	w := writer{noSync: true, spare: p.spare, warn: s.warn, expect: info, displaced: &displaced} // the journal made it durable
	rerr := w.replace(p.ticket, p.tmp, next.Encode(), like)
	if rerr == nil && displaced != nil {
		s.keepDisplaced(p, j, like, stored, next, displaced)
	}
	if rerr == nil {
		if err := markVisible(j.f, next.Version()); err != nil {
			// Only a ticket file put back to an older version later, in
			// this boot, would then cut what this one shows.
			s.warn(files.Error("mark", j.path, err).Error())
		}
		// Committed: an index that falls behind is rolled forward, or
		// rebuilt, by the next writer.
		written := slices.Concat(st.add, st.lapsed, records)
		if j.holds == nil && slices.ContainsFunc(written, opensOrCloses) {
			if err := j.openHold(); err != nil {
				s.warn(err.Error())
			}
		}
		if j.holdings != nil {
			if err := j.holdings.Apply(written); err != nil {
				s.warn(err.Error())
			}
		}
		if j.holds != nil {
			if err := j.holds.Apply(written); err != nil {
				s.warn(err.Error())
			}
		}
		return ferr
	}
	// The records are in the journal but the ticket file does not show
	// them: take them back, so that a failed buy sold nothing.
	if uerr := s.undo(j, st.end, rerr, len(records) > 0); uerr != nil {
		return uerr
	}
	return rerr
}

// opensOrCloses reports whether r opens or closes a hold.
func opensOrCloses(r ticket.Record) bool {
	return r.Kind == ticket.KindHold || r.Kind == ticket.KindConfirm || r.Kind == ticket.KindRelease
}

// keepDisplaced keeps the change another process made to the ticket file
// while this one held the lock (see writer.expect): its count differs by
// what it took (or added) from the books at the version it read, which it
// kept (the version read here, or an older one). The ticket file, now at
// next, is written again with that difference, which the next settlement
// records as a change made outside ticket, as if the other process had
// come just after.
func (s *Store) keepDisplaced(p paths, j *journal, like files.Like, read, next ticket.State, data []byte) {
	other, err := ticket.Parse(data)
	if err != nil {
		s.warn(fmt.Sprintf("%s: another process replaced it while this one held the lock (was %s deleted?), with what does not parse (%v): its change is lost", p.ticket, p.lock, err))
		return
	}
	base := read
	if other.Version() != read.Version() {
		if base, err = j.booksAt(other); err != nil {
			s.warn(fmt.Sprintf("%s: another process replaced it while this one held the lock (was %s deleted?), from version %d, whose books are unknown (%v): its change is lost", p.ticket, p.lock, other.Version(), err))
			return
		}
	}
	taken := base.Left() - other.Left()
	if taken == 0 {
		return
	}
	left, total := next.Left()-taken, next.Total()
	if taken < 0 {
		total -= taken // stock added
	}
	if left < 0 {
		// Both sold the same tickets, each deciding on the count it read:
		// put its version back, as if it had replaced the file after this
		// one, so that the next settlement finds and reports it
		// (ticket.OversoldError) instead of a count below none.
		err := (writer{noSync: true}).replace(p.ticket, p.tmp, data, like)
		if err == nil {
			err = fmt.Errorf("%d sold twice", -left)
		}
		s.warn(fmt.Sprintf("%s: another process replaced it while this one held the lock (was %s deleted?) and took %d tickets of those this one sold: %v", p.ticket, p.lock, taken, err))
		return
	}
	note := ""
	kept, err := ticket.At(next.Version(), left, total)
	if err == nil {
		err = (writer{noSync: true}).replace(p.ticket, p.tmp, kept.WithBookingOf(next).WithMembersOf(next).Encode(), like)
	}
	if err != nil {
		s.warn(fmt.Sprintf("%s: another process replaced it while this one held the lock (was %s deleted?) and changed the count by %d, which could not be kept: %v", p.ticket, p.lock, -taken, err))
		return
	}
	s.warn(fmt.Sprintf("%s: another process replaced it while this one held the lock (was %s deleted?): kept its change of the count by %d, which the next buy records%s", p.ticket, p.lock, -taken, note))
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
	err := seam.Fault(seam.TempRemove)
	if err == nil {
		err = os.Remove(tmp)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return files.Error("remove leftover", tmp, err).Error()
	}
	return fmt.Sprintf("%s: removed what a crashed writer left", tmp)
}

// Init creates the ticket file with n tickets and a journal that starts
// with them. It refuses with ErrExists if the sale exists (its ticket
// file, or a journal holding records beside a missing one), unless mode is
// Replace, which resets it under the lock. A journal that holds sales is
// never deleted: it is renamed to PATH.journal.YYYYMMDDTHHMMSS.NNNNNNNNNZ
// first, and the returned archive names it ("" when there was none).
func (s *Store) Init(ctx context.Context, n int64, mode Mode) (state ticket.State, archive string, err error) {
	state, err = ticket.New(n)
	if err != nil {
		return state, "", err
	}
	archive, err = s.Restore(ctx, state, nil, mode)
	return state, archive, err
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
			return "", files.Error("remove", path, err)
		}
		return "", nil
	}
	archive := path + "." + files.Stamp(time.Now())
	if err := os.Rename(path, archive); err != nil {
		return "", fmt.Errorf("keep old journal: %w", err)
	}
	return archive, nil
}

// Sales yields the journal's committed records in order, without the
// lock: every kind (see ticket.Kind), up to the version the ticket file
// has reached, and those a reboot left beyond it. Lines beyond it written
// this boot are not yielded (one being appended right now, or one a
// crashed buyer left), nor a change made outside ticket that no writer has
// recorded yet. An error (the ticket file or a committed line is invalid,
// a file cannot be read) ends the sequence.
func (s *Store) Sales() iter.Seq2[ticket.Record, error] {
	return func(yield func(ticket.Record, error) bool) {
		st, file, err := s.read()
		if err != nil {
			yield(ticket.Record{}, err)
			return
		}
		limit := file.Version() + int64(len(st.rolled))
		if !file.Stored() {
			limit = math.MaxInt64 // the journal's last record is the anchor
		}
		for r, err := range readRecords(s.paths().journal) {
			var je *journalError
			switch {
			case err != nil && errors.As(err, &je) && je.unfinished:
				return // a line being appended, or left by a crash
			case err != nil:
				yield(ticket.Record{}, err)
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

// Restore replaces the sale with state and a journal of its records, as a
// copy of another sale: under the lock it writes the journal (starting
// with an init record, made from state and the records when they have
// none), fsyncs it, then replaces the ticket file, durably, which is the
// commit point. It refuses with ErrExists if the sale exists (see Init),
// unless mode is Replace; then an old journal that holds sales is renamed
// (archive names it), never deleted, and a ticket file it cannot parse is
// never overwritten.
func (s *Store) Restore(ctx context.Context, state ticket.State, records []ticket.Record, mode Mode) (archive string, err error) {
	p := s.paths()
	l := files.Like{UID: -1} // a new sale: the umask decides
	exists := func() error {
		info, err := os.Stat(p.ticket)
		if errors.Is(err, fs.ErrNotExist) {
			if n, last, err := journalRecords(p.journal); err != nil {
				return err
			} else if n > 0 && mode != Replace {
				return &sentinelError{fmt.Sprintf("%s does not exist, but its journal %s holds records (the last #%d, %d left): the sale exists", s.path, p.journal, last.Seq, last.Left), []error{ErrExists, ErrTicketFileMissing}}
			}
			return nil
		}
		if err != nil {
			return files.Error("stat", s.path, err)
		}
		if !info.Mode().IsRegular() {
			return invalidFile(s.path, notRegular(info.Mode()))
		}
		if mode != Replace {
			return &sentinelError{s.path + " already exists", []error{ErrExists}}
		}
		// Replace replaces a sale, not a file it cannot read: never
		// overwrite what could not be parsed.
		if _, _, err := readState(p.ticket); err != nil {
			return fmt.Errorf("%w (not replacing it; move it away first if it is not needed)", err)
		}
		l = files.LikeFile(info)
		return nil
	}
	if err := exists(); err != nil {
		return "", err
	}
	lines := journalOf(state, records)
	unlock, err := s.lock(ctx, p, l)
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := exists(); err != nil { // again, under the lock
		return "", err
	}
	old, err := openJournal(p.journal, l, true) // held while it is archived
	if err != nil {
		return "", err
	}
	defer old.Close()
	// The old journal goes first: a fresh ticket file beside an old
	// journal would make its records look uncommitted.
	if archive, err = archiveJournal(p.journal); err != nil {
		return "", err
	}
	// The old sale's spare goes too: written over in place by the new
	// sale's first buy, it could come back after a power cut with the
	// old sale's content under the new sale's name.
	if err := os.Remove(p.spare); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return archive, files.Error("remove", p.spare, err)
	}
	// And the index of the old sale's holdings: it would be rebuilt (its
	// anchor is not in the new journal), but need not wait for that.
	if err := removeIndexes(p); err != nil {
		return archive, err
	}
	j, err := openJournal(p.journal, l, s.opts.NoSync)
	if err != nil {
		return archive, err
	}
	defer j.Close()
	if err := j.append(lines, state.Version()); err != nil {
		return archive, err
	}
	if err := (writer{noSync: s.opts.NoSync}).replace(p.ticket, p.tmp, state.Encode(), l); err != nil {
		return archive, err
	}
	return archive, markVisible(j.f, state.Version())
}

// journalOf returns the journal lines of a sale restored at state from
// records: an init record first (the records' own, or one made from the
// first record and state), then every record as given, with its total
// filled in where the source did not record it and the records follow one
// another so far. Records that do not follow are written as they are, for
// Verify to report, as Restore promises.
func journalOf(state ticket.State, records []ticket.Record) []byte {
	init := ticket.Record{Kind: ticket.KindInit, Seq: state.Version(), Left: state.Left(), Total: state.Total(), Limit: state.Limit(), Time: time.Now().UTC()}
	rest := records
	switch {
	case len(records) > 0 && records[0].Kind == ticket.KindInit:
		init, rest = records[0], records[1:]
	case len(records) > 0:
		first := records[0]
		init.Seq, init.Left = first.Seq-1, first.Left+first.Taken()
		for _, r := range records {
			init.Total -= r.Stocked()
		}
	}
	lines := init.AppendLine(nil)
	books, following := init.Books()
	for _, r := range rest {
		if following {
			next, err := books.Apply(r)
			if following = err == nil; following {
				r.Total, books = next.Total(), next
			}
		}
		lines = r.AppendLine(lines)
	}
	return lines
}
