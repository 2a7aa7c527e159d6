package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ticketd/ticket/store/holders"
	"github.com/ticketd/ticket/store/holds"
	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/store/lock"
	"github.com/ticketd/ticket/ticket"
)

// tailWindow is how much of the journal's end recovery reads: several
// whole lines at the longest a line can be (a 200-byte buyer name may grow
// sixfold when escaped). Reading only the tail keeps a buy O(1) in the
// number of sales.
const tailWindow = 4 << 10

// currentBoot returns this boot of the machine's id, or nil where it is
// unknown (see readMark). Tests replace it to simulate a reboot.
var currentBoot = files.BootID

// journalError is a journal that does not balance with the ticket file. It
// matches both ErrJournal and ticket.ErrInvalid, and behind, when set.
type journalError struct {
	path       string
	problem    string
	unfinished bool  // the last line has no line end: a crashed append
	behind     error // ErrJournalBehind, or nil
	cause      error // what the problem came of (a *ticket.OversoldError), or nil
}

func (e *journalError) Error() string { return e.path + ": " + e.problem }

func (e *journalError) Unwrap() error { return e.cause }

func (e *journalError) Is(target error) bool {
	return target == ErrJournal || target == ticket.ErrInvalid || (e.behind != nil && target == e.behind)
}

// journal is the sales journal opened for appending under the lock.
//
// The journal is grown ahead of its records, with spaces (pad): a commit
// writes its lines over them in place, so that its fdatasync writes the
// data alone and no file size, which on ext4 with its journal costs about
// three times as much. JSON Lines readers skip the spaces as whitespace
// (jq does); ticket's readers stop at them (see contentEnd). A power cut
// in a write over them leaves spaces, or a line cut short, which the next
// buy cuts as any unfinished line.
type journal struct {
	path    string
	f       *os.File
	release func() // unlocks f, kept open for the next transaction (see lock.Kept); nil: Close closes it
	noSync  bool

	lapsed []ticket.Record // holds this transaction releases as lapsed, before its own records

	// settled is the version the journal's committed records reach, as
	// the transaction's settlement found it: records beyond it are a
	// writer's that died before its rename, cut by this transaction, and
	// Sales never returns them (group commit would publish them as sold).
	// MaxInt64 until a settlement says.
	settled int64

	holdings *holders.Index // each buyer's holding, in a sale with a limit (see holdings.go); nil without
	holds    *holds.Index   // the open holds, once a transaction needs them (see openHolds); nil before
	openHold func() error   // opens holds

	content int64 // where the records end: the file's length without the padding after them
	phys    int64 // the file's length

	// tail is the end of the file from tailAt, as read at the opening to
	// find content: the reads of the last records are served from it
	// until the journal is written (see ReadAt).
	tail    []byte
	tailAt  int64
	tailBuf *[tailRead]byte // tail's buffer, back to tailBufs at Close
}

// ReadAt reads the journal at off: from what the opening read when that
// covers it, from the file otherwise.
func (j *journal) ReadAt(p []byte, off int64) (int, error) {
	if b := j.lend(off, int64(len(p))); b != nil {
		return copy(p, b), nil
	}
	return j.f.ReadAt(p, off)
}

// lend returns the n bytes of the journal at off from what the opening
// read, without a copy, or nil when that does not cover them. The bytes
// are the journal's until it is written or closed: read them, keep none.
func (j *journal) lend(off, n int64) []byte {
	if j.tail == nil || off < j.tailAt || off+n > j.tailAt+int64(len(j.tail)) {
		return nil
	}
	return j.tail[off-j.tailAt : off-j.tailAt+n]
}

// readAt returns the n bytes of f at off: lent by a journal that has them
// (see lend), read otherwise.
func readAt(f io.ReaderAt, off, n int64) ([]byte, error) {
	if j, ok := f.(*journal); ok {
		if b := j.lend(off, n); b != nil {
			return b, nil
		}
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// pad is what the journal is grown with, growBy bytes at a time, ahead of
// its records (see journal).
const (
	pad    = ' '
	growBy = 16 << 10
)

// tailRead is how much of the journal's end its opening reads: the
// padding a growth leaves and the last records.
const tailRead = growBy + 4<<10

// tailBufs keeps the buffers of those reads from one opening of a journal
// to the next, which spares a process that buys again and again the
// allocation, and the clearing, of 20 KiB per buy.
var tailBufs = sync.Pool{New: func() any { return new([tailRead]byte) }}

// contentEnd returns where the journal f, size bytes long, ends without
// the padding after its records: after the last byte that is not a space.
func contentEnd(f io.ReaderAt, path string, size int64) (int64, error) {
	buf := tailBufs.Get().(*[tailRead]byte)
	defer tailBufs.Put(buf)
	end, _, _, err := contentTail(f, path, size, buf[:])
	return end, err
}

// contentTail is contentEnd that also returns the bytes it read last into
// buf (tailRead bytes), from tailAt on: the padding and the last records
// before it.
func contentTail(f io.ReaderAt, path string, size int64, buf []byte) (end int64, tail []byte, tailAt int64, err error) {
	end = size
	for end > 0 {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, nil, 0, files.Error("read", path, err)
		}
		if n := padStart(b); n > 0 {
			return start + int64(n), b, start, nil
		}
		end = start
	}
	return 0, nil, 0, nil
}

// padStart returns the length of b without the padding at its end: what
// bytes.TrimRight(b, " ") keeps, eight bytes at a time over the padding a
// growth leaves (up to 16 KiB, read at every opening).
func padStart(b []byte) int {
	const pads = 0x2020202020202020 // eight pad bytes
	n := len(b)
	for n >= 8 && binary.LittleEndian.Uint64(b[n-8:]) == pads {
		n -= 8
	}
	for n > 0 && b[n-1] == pad {
		n--
	}
	return n
}

// openJournal opens the journal for appending, creating it (see files.Create)
// if it is missing, as it is beside a seed file that has never been sold
// from, and locks it.
//
// The journal's own lock (flock(2), exclusive, taken after the lock file's
// and held as long) keeps two ticket processes apart even when someone
// deleted the lock file while one of them held it, so that each locks a
// different file: both still lock the journal, which nobody deletes
// lightly. Processes that follow the lock protocol without ticket lock only
// the lock file, and never see this one.
func openJournal(path string, l files.Like, noSync bool) (*journal, error) {
	return openKeptJournal(path, nil, l, noSync)
}

// openKeptJournal is openJournal through k, the journal kept open between
// a Store's transactions (see lock.Kept); nil opens it anew.
func openKeptJournal(path string, k *lock.Kept, l files.Like, noSync bool) (*journal, error) {
	if err := seam.Fault(seam.JournalOpen); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	for range 3 {
		var f *os.File
		var info fs.FileInfo
		var release func()
		var err error
		switch {
		case seam.NoJournalLock:
			if f, err = files.Open(path, os.O_RDWR, 0); err == nil {
				if info, err = f.Stat(); err != nil {
					f.Close()
				}
			}
		case k != nil:
			f, info, release, err = k.OpenLocked()
		default:
			f, info, err = lock.OpenLocked(path, os.O_RDWR)
		}
		if errors.Is(err, fs.ErrNotExist) { // beside a seed file: create it once
			if err := createJournal(path, l); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, files.Error("open journal", path, err)
		}
		j := &journal{path: path, f: f, release: release, noSync: noSync, phys: info.Size(), settled: math.MaxInt64}
		if err := checkJournal(info, path); err != nil {
			j.Close()
			return nil, err
		}
		j.tailBuf = tailBufs.Get().(*[tailRead]byte)
		if j.content, j.tail, j.tailAt, err = contentTail(f, path, j.phys, j.tailBuf[:]); err != nil {
			j.Close()
			return nil, err
		}
		return j, nil
	}
	return nil, files.Error("open journal", path, errors.New("deleted again and again while this process created it"))
}

// Close closes the journal's file, or unlocks the one kept open between
// transactions; what it lent (see lend) is no longer its to lend.
func (j *journal) Close() error {
	if j.tailBuf != nil {
		j.tail = nil
		tailBufs.Put(j.tailBuf)
		j.tailBuf = nil
	}
	if j.release != nil {
		j.release()
		return nil
	}
	return j.f.Close()
}

// openJournalToRead opens the journal at path to read it without its
// lock, and refuses what is not a journal (see checkJournal) before
// reading a byte: a FIFO put at its name neither blocks the open nor the
// reads. A missing journal is an error wrapping fs.ErrNotExist.
func openJournalToRead(path string) (*os.File, fs.FileInfo, error) {
	f, err := files.Open(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, files.Error("open journal", path, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, files.Error("stat", path, err)
	}
	if err := regularJournal(info, path); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, info, nil
}

// regularJournal refuses, as an invalid journal, what was opened at the
// journal's name and is not a regular file (a FIFO, a device or a
// directory put there: it is opened without blocking, and never read).
func regularJournal(info fs.FileInfo, path string) error {
	if !info.Mode().IsRegular() {
		return &journalError{path: path, problem: notRegular(info.Mode()) + " (a journal is a regular file of JSON lines): put the sale's journal back under this name"}
	}
	return nil
}

// checkJournal refuses what regularJournal refuses, and a journal with
// more than one name: a hard-linked copy of a sale (cp -l, cp -al) has its
// own ticket file and lock file but shares this journal, so that each sale
// would cut the other's records as a crashed buyer's, and verify the
// other's sales as its own.
func checkJournal(info fs.FileInfo, path string) error {
	if err := regularJournal(info, path); err != nil {
		return err
	}
	if n := files.Links(info); n > 1 {
		return &journalError{path: path, problem: fmt.Sprintf("it has %d names (hard links), so two sales would write one journal and cut each other's sales; remove the other names (find -samefile %s), and copy a sale with a plain copy of each file (cp, never cp -l or cp -al)", n, path)}
	}
	return nil
}

// createJournal creates the journal at path, empty, unless it exists. The
// new journal's name is fsynced into its directory before a sale in it can
// be committed: a later rename's directory fsync may come too late.
func createJournal(path string, l files.Like) error {
	created, err := files.Create(path, l)
	if err != nil {
		return files.Error("create journal", path, err)
	}
	if created {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

// entry is a whole record of the journal and the byte offset of its line.
type entry struct {
	ticket.Record
	off int64
}

// settlement is what the journal says of a ticket file: the state the sale
// is in, and what has to be written or cut to bring the two files in line.
// settle works it out; nothing is changed until a writer applies it.
type settlement struct {
	state ticket.State    // the sale as it now is: every committed record applied, the count reconciled
	add   []ticket.Record // records to append before any new one: an init record, a change made outside ticket

	end    int64           // where the journal's committed records end: it is cut there if longer
	cut    []ticket.Record // records beyond the ticket file's version written in this boot by a process that died first: never committed
	rolled []ticket.Record // records beyond the ticket file's version that were committed: applied

	committed int64          // the version the journal's committed records reach, before add
	last      *ticket.Record // the journal's record at committed; nil if it has none

	lapsed []ticket.Record // holds found expired, released as lapsed: written after add (see lapse)

	unfinished  bool // an unfinished last line is cut
	unversioned bool // the ticket file had no "version" beside a journal: continued from its last record
	empty       bool // the journal holds no record at all
}

// changes reports whether the ticket file must be written even if nothing
// new is recorded: it is behind the journal, or records are to be added.
func (st settlement) changes() bool {
	for _, r := range st.add {
		if r.Kind != ticket.KindInit {
			return true
		}
	}
	return len(st.rolled) > 0 || len(st.lapsed) > 0
}

// lapse releases, as lapsed, the holds that expired at now, which x (the
// index of open holds) gives: whoever next holds the lock records it (see
// settlement.lapsed), and a reader counts them so without writing. A sale
// with nothing held has none.
func (st *settlement) lapse(x *holds.Index, now time.Time) error {
	if st.state.Held() == 0 {
		return nil
	}
	expired, err := x.Expired(now)
	if err != nil {
		return err
	}
	st.state, st.lapsed = st.state.Lapse(expired, now)
	return nil
}

// lapseFromJournal is lapse for a reader without a usable index (removed,
// damaged, or behind after a crash: rare): it reads the open holds from
// the whole journal at path, up to the committed end.
func (st *settlement) lapseFromJournal(path string, now time.Time) error {
	if st.state.Held() == 0 {
		return nil
	}
	var l ticket.Ledger
	for r, err := range readRecords(path) {
		var je *journalError
		if err != nil && errors.As(err, &je) && je.unfinished {
			break // a line being written
		}
		if err != nil {
			return err
		}
		if r.Seq > st.committed {
			break
		}
		l.Add(r)
	}
	var expired []ticket.Hold
	for _, h := range l.OpenHolds() {
		if !h.Expires.After(now) {
			expired = append(expired, h)
		}
	}
	slices.SortFunc(expired, func(a, b ticket.Hold) int { return a.Expires.Compare(b.Expires) })
	st.state, st.lapsed = st.state.Lapse(expired, now)
	return nil
}

// lapseReading is lapse for a reader (Read, Verify): through the index at
// path when it is usable, from the journal otherwise.
func (st *settlement) lapseReading(holdsPath, journalPath string, now time.Time) error {
	if st.state.Held() == 0 {
		return nil
	}
	x, ok, err := holds.Open(holdsPath, st.committed, st.last)
	if err != nil {
		return err
	}
	if ok {
		defer x.Close()
		before := st.state
		err := st.lapse(x, now)
		if !errors.Is(err, holds.ErrDamaged) {
			return err
		}
		st.state, st.lapsed = before, nil
	}
	return st.lapseFromJournal(journalPath, now)
}

// note says, in one line, what a writer applying the settlement repairs,
// or "" if nothing.
func (st settlement) note(path string) string {
	var parts []string
	if len(st.rolled) > 0 {
		parts = append(parts, "completed what was committed before a restart (or before the ticket file went back to an older version): "+describe(st.rolled))
	}
	if len(st.cut) > 0 {
		parts = append(parts, "cut what a crashed buyer never committed: "+describe(st.cut))
	}
	if st.unfinished {
		parts = append(parts, "cut an unfinished line a crashed buyer left (or what a power cut left of one)")
	}
	for _, r := range st.add {
		if r.Kind != ticket.KindInit {
			parts = append(parts, fmt.Sprintf("recorded #%d: %s (the ticket file's count was changed by another process)", r.Seq, r.Describe()))
		}
	}
	if len(st.lapsed) > 0 {
		parts = append(parts, "released expired holds: "+describe(st.lapsed))
	}
	if st.unversioned {
		parts = append(parts, `the ticket file had lost its "version" member: continued from the journal's last record`)
	}
	if len(parts) == 0 {
		return ""
	}
	return path + ": " + strings.Join(parts, "; ")
}

func describe(records []ticket.Record) string {
	var s []string
	for _, r := range records {
		s = append(s, fmt.Sprintf("#%d (%s)", r.Seq, r.Describe()))
	}
	return strings.Join(s, ", ")
}

// settle reads the end of the journal back to the record at the ticket
// file's version and works out the settlement for file, the ticket file's
// state (see settleTail). It changes nothing.
func settle(r io.ReaderAt, f *os.File, path string, size int64, file ticket.State, now time.Time) (settlement, error) {
	stop := func(r ticket.Record) bool { return r.Seq <= file.Version() }
	visible := int64(math.MaxInt64) // roll every record beyond forward
	marked := false
	markRead, same, v := false, false, int64(0)
	mark := func() (bool, int64) { // the journal's mark, read once
		if !markRead {
			markRead = true
			same, v = readMark(f)
		}
		return same, v
	}
	if !file.Stored() {
		stop = func(ticket.Record) bool { return true } // the last record
	}
	entries, found, end, err := tailRecords(r, path, size, stop)
	if err != nil {
		return settlement{}, err
	}
	if !file.Stored() && len(entries) > 0 {
		// A file without "version" (another program wrote "count"
		// alone) continues from the journal's last record, unless that
		// record is a writer's that died before its swap: in a journal of
		// this boot, beyond the last version a ticket file has shown (v),
		// while PATH.spare does not hold version v, which the swap would
		// have put there. The other program then took its count from
		// version v.
		if same, v := mark(); same && entries[0].Seq > v && !swappedOut(path, v) {
			visible, marked = v, true
			if entries, found, end, err = tailRecords(r, path, size, func(r ticket.Record) bool { return r.Seq <= v }); err != nil {
				return settlement{}, err
			}
		}
	}
	if !marked && (found && len(entries) > 1 || !found && len(entries) > 0) {
		if same, v := mark(); same { // asked only when there is something beyond
			visible = v
		}
	}
	st, err := settleTail(path, file, entries, found, end, size, visible, now)
	if err == nil && st.unversioned {
		// The file lost its "limit" with its other members: the journal's
		// last init or limit record says it.
		limit, lerr := lastLimit(path, st.committed)
		if lerr != nil {
			return st, lerr
		}
		if st.state, err = st.state.WithLimit(limit, 0); err != nil {
			return st, err
		}
	}
	return st, err
}

// swappedOut reports whether the spare beside the journal at path holds
// version v: the version a writer's swap took out of the ticket file, so
// that the writer's own version was shown.
func swappedOut(path string, v int64) bool {
	data, err := os.ReadFile(strings.TrimSuffix(path, ".journal") + ".spare")
	if err != nil {
		return false
	}
	st, err := ticket.Parse(data)
	return err == nil && st.Stored() && st.Version() == v
}

// lastLimit returns the per-buyer limit the journal at path sets by its
// records up to version: its last init or limit record's; 0 for none. A
// sale has a limit only if it started with one (a limit record changes it,
// never sets one): a journal whose first record is not an init record
// with a limit is read no further.
func lastLimit(path string, version int64) (int64, error) {
	var limit int64
	first := true
	for r, err := range readRecords(path) {
		var je *journalError
		if err != nil && errors.As(err, &je) && je.unfinished {
			break
		}
		if err != nil {
			return 0, err
		}
		if r.Seq > version {
			break
		}
		if first && (r.Kind != ticket.KindInit || r.Limit == 0) {
			return 0, nil
		}
		first = false
		if r.Kind == ticket.KindInit || r.Kind == ticket.KindLimit {
			limit = r.Limit
		}
	}
	return limit, nil
}

// settleTail is settle's decision, from the journal's tail: entries, in
// journal order, start with the record at the ticket file's version when
// found; end is where the whole lines end in a journal of size bytes.
//
// Records beyond the ticket file's version and beyond visible are cut: in
// a journal this boot wrote, visible is the highest version a ticket file
// has shown (see readMark), and a writer replaces the ticket file before
// it unlocks, so one that died first had told no one. The others were
// committed (a power cut took the ticket file's rename but not the fsynced
// journal, or the ticket file was put back to an older version) and are
// rolled forward, together with what another process changed in the
// ticket file's count since its version (ticket.RollForward). With nothing
// beyond, the ticket file's count is the truth, and a difference from the
// books is a change made outside ticket, recorded as such
// (ticket.Reconcile). A ticket file ahead of its journal is refused with
// ErrJournalBehind: the journal was cut or replaced.
func settleTail(path string, file ticket.State, entries []entry, found bool, end, size int64, visible int64, now time.Time) (settlement, error) {
	st := settlement{end: end, unfinished: end != size, empty: len(entries) == 0}
	var anchor *ticket.Record
	beyond := entries
	switch {
	case !file.Stored() && len(entries) > 0:
		// The journal's last record, or the last one shown (see settle):
		// what lies beyond is cut below.
		anchor, beyond = &entries[0].Record, entries[1:]
		st.unversioned = true
	case found:
		anchor, beyond = &entries[0].Record, entries[1:]
		switch {
		case anchor.Seq != file.Version() && len(beyond) == 0:
			return st, &journalError{path: path, problem: fmt.Sprintf("ends at record #%d, but the ticket file is at version %d: the journal was cut, replaced or deleted", anchor.Seq, file.Version()), behind: ErrJournalBehind}
		case anchor.Seq != file.Version():
			return st, &journalError{path: path, problem: fmt.Sprintf("holds no record #%d, the ticket file's version: it jumps from #%d to #%d", file.Version(), anchor.Seq, beyond[0].Seq)}
		}
	case file.Version() != 0:
		last := "holds no records"
		if len(entries) > 0 {
			last = fmt.Sprintf("starts at record #%d", entries[0].Seq)
		}
		return st, &journalError{path: path, problem: fmt.Sprintf("%s, but the ticket file is at version %d: the journal was cut, replaced or deleted", last, file.Version()), behind: ErrJournalBehind}
	}
	books, err := booksAt(path, anchor, file)
	if err != nil {
		return st, err
	}
	for i, e := range beyond {
		if e.Seq > visible {
			st.cut = sales(beyond[i:])
			st.end = e.off
			beyond = beyond[:i]
			break
		}
	}
	var r ticket.Record
	var changed bool
	if len(beyond) > 0 {
		var rolled ticket.State
		rolled, r, changed, err = ticket.RollForward(books, sales(beyond), file, now)
		if err != nil {
			return st, &journalError{path: path, problem: fmt.Sprintf("%v (beyond the ticket file's version %d)", err, file.Version()), cause: err}
		}
		st.rolled = sales(beyond)
		st.state = rolled
	} else {
		st.state, r, changed = ticket.Reconcile(books, file, now)
	}
	st.committed = st.state.Version()
	st.last = anchor
	if len(beyond) > 0 {
		st.last = &st.rolled[len(st.rolled)-1]
	}
	if changed {
		st.add = append(st.add, r)
		st.committed--
	}
	if st.empty {
		// A journal without records gets its init record with the first
		// thing written to it.
		init := ticket.Record{Seq: books.Version(), Kind: ticket.KindInit, Left: books.Left(), Total: books.Total(), Time: now.UTC()}
		st.add = append([]ticket.Record{init}, st.add...)
	}
	return st, nil
}

func sales(entries []entry) []ticket.Record {
	out := make([]ticket.Record, len(entries))
	for i, e := range entries {
		out[i] = e.Record
	}
	return out
}

// booksAt returns the books at the anchor record: the state the journal
// says the sale was in at the ticket file's version. With no anchor (an
// empty journal, or one written before init records whose first sale is
// still to come), they are the ticket file's own total and sold, which the
// lock protocol leaves alone. A sale line written before totals were
// recorded takes its total from the ticket file the same way.
func booksAt(path string, anchor *ticket.Record, file ticket.State) (ticket.State, error) {
	if anchor == nil {
		if !file.Stored() {
			return file, nil // a seed file: consistent, checked by Parse
		}
		if file.Sold() > file.Total() {
			return file, &journalError{path: path, problem: fmt.Sprintf("the ticket file says %d sold of %d, and the journal holds nothing to tell", file.Sold(), file.Total())}
		}
		b, err := books(path, file.Version(), file.Total()-file.Sold()-file.Held(), file.Total())
		return b.WithBookingOf(file), err
	}
	if b, ok := anchor.Books(); ok {
		if !file.Stored() {
			// A file another program wrote without the store's members
			// (a peer that keeps only "count"): the record's held
			// tickets stand; the limit is settle's to find.
			return b, nil
		}
		return b.WithBookingOf(file), nil
	}
	total := file.Total()
	if total < anchor.Left {
		total = file.Sold() + anchor.Left
	}
	b, err := books(path, anchor.Seq, anchor.Left, total)
	return b.WithBookingOf(file), err
}

// books is ticket.At for the books of the journal at path.
func books(path string, version, left, total int64) (ticket.State, error) {
	st, err := ticket.At(version, left, total)
	if err != nil {
		return st, &journalError{path: path, problem: "the books make no sale: " + err.Error()}
	}
	return st, nil
}

// settleFile settles file with the journal at path, read without its lock
// (see settle): a missing journal settles as an empty one.
func settleFile(path string, file ticket.State) (settlement, error) {
	j, info, err := openJournalToRead(path)
	if errors.Is(err, fs.ErrNotExist) {
		return settleTail(path, file, nil, false, 0, 0, math.MaxInt64, time.Now())
	}
	if err != nil {
		return settlement{}, err
	}
	defer j.Close()
	size, err := contentEnd(j, path, info.Size())
	if err != nil {
		return settlement{}, err
	}
	return settle(j, j, path, size, file, time.Now())
}

// recoverLocked applies a settlement's cuts to the journal, under the
// lock: records written this boot beyond the ticket file's version, and an
// unfinished last line, neither ever committed. The cut is not fsynced:
// whatever is appended next is, with the journal's new length, and a cut
// lost in a power cut only brings back records a reboot then rolls forward
// as if they had been committed, which no one was told they were not.
func (j *journal) recoverLocked(st settlement) error {
	if st.end == j.content {
		return nil
	}
	if err := seam.Fault(seam.JournalCut); err != nil {
		return files.Error("cut", j.path, err)
	}
	return j.blank(st.end)
}

// blank cuts the journal back to end: what follows is written over with
// padding, which keeps the space grown for the records to come.
func (j *journal) blank(end int64) error {
	j.tail = nil
	if _, err := j.f.WriteAt(bytes.Repeat([]byte{pad}, int(j.content-end)), end); err != nil {
		return files.Error("cut", j.path, err)
	}
	j.content = end
	return nil
}

// File returns the open journal, for group commit to check it is its
// region's.
func (j *journal) File() *os.File { return j.f }

// Sales returns the journal's sales numbered from..to, by number,
// reading back from the end only as far as it must. Numbers run up by one,
// so below from nothing more is in range (a journal replaced since, by
// init --force or copy --force, may hold none).
func (j *journal) Sales(from, to int64) (map[int64]ticket.Record, error) {
	size, err := j.size()
	if err != nil {
		return nil, err
	}
	entries, _, _, err := tailRecords(j, j.path, size, func(s ticket.Record) bool { return s.Seq < from })
	if err != nil {
		return nil, err
	}
	m := map[int64]ticket.Record{}
	for _, e := range entries {
		if e.Seq >= from && e.Seq <= to && e.Seq <= j.settled && grouped(e.Kind) {
			m[e.Seq] = e.Record
		}
	}
	return m, nil
}

// grouped reports whether group commit makes records of kind k.
func grouped(k ticket.Kind) bool {
	switch k {
	case ticket.KindSale, ticket.KindHold, ticket.KindConfirm, ticket.KindRelease, ticket.KindAdd, ticket.KindRemove:
		return true
	}
	return false
}

// booksAt returns the books at file's version, from its record.
func (j *journal) booksAt(file ticket.State) (ticket.State, error) {
	size, err := j.size()
	if err != nil {
		return ticket.State{}, err
	}
	entries, found, _, err := tailRecords(j, j.path, size, func(r ticket.Record) bool { return r.Seq <= file.Version() })
	if err != nil {
		return ticket.State{}, err
	}
	if !found || entries[0].Seq != file.Version() {
		return ticket.State{}, &journalError{path: j.path, problem: fmt.Sprintf("holds no record #%d", file.Version())}
	}
	return booksAt(j.path, &entries[0].Record, file)
}

// tailRecords parses the whole lines of the journal f (size bytes long, at
// path) backwards from its end until stop accepts a record or the
// journal's start is reached, and returns those records in journal order
// (the accepted one first), whether stop accepted one, and where the whole
// lines end (before an unfinished last line, which is no record). Lines
// before the accepted one are not read: a buy stays O(1) in the number of
// sales.
func tailRecords(f io.ReaderAt, path string, size int64, stop func(ticket.Record) bool) (entries []entry, found bool, end int64, err error) {
	for window := int64(tailWindow); ; window *= 2 {
		start := max(size-window, 0)
		buf, err := readAt(f, start, size-start)
		if err != nil {
			return nil, false, 0, files.Error("read", path, err)
		}
		nl := bytes.LastIndexByte(buf, '\n')
		if nl < 0 && start > 0 {
			continue // an unfinished line longer than the window
		}
		buf = buf[:nl+1]
		end = start + int64(nl+1)
		entries = entries[:0]
		cut := false
		for len(buf) > 0 && !found {
			lineStart := bytes.LastIndexByte(buf[:len(buf)-1], '\n') + 1
			if lineStart == 0 && start > 0 {
				cut = true // this line may begin before the window: read more
				break
			}
			line := bytes.TrimLeft(buf[lineStart:len(buf)-1], " ")
			if len(line) == 0 { // padding another program wrote a line after
				buf = buf[:lineStart]
				continue
			}
			if residue(line) {
				// What a power cut left of writes that never reached the
				// disk: nothing from here on was ever confirmed, since
				// the fsync that confirmed a later line would have
				// written this one. Cut it, and all after it.
				end = start + int64(lineStart)
				entries = entries[:0]
				buf = buf[:lineStart]
				continue
			}
			s, err := ticket.ParseRecord(line)
			if err != nil {
				return nil, false, 0, &journalError{path: path, problem: fmt.Sprintf("the line at byte %d is not a record: %v", start+int64(lineStart), err)}
			}
			entries = append(entries, entry{s, start + int64(lineStart)})
			found = stop(s)
			buf = buf[:lineStart]
		}
		if !cut {
			slices.Reverse(entries)
			return entries, found, end, nil
		}
	}
}

// wholeEnd reads the journal f from its start and returns where its whole
// records end: before an unfinished last line or the first line a power
// cut left zeros in.
func wholeEnd(f *os.File, path string) (int64, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, math.MaxInt64), 64<<10)
	var end int64
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return 0, fmt.Errorf("read %s: a line longer than %d bytes", path, r.Size())
		}
		if err != nil || residue(line) {
			if errors.Is(err, io.EOF) || err == nil {
				return end, nil
			}
			return 0, files.Error("read", path, err)
		}
		end += int64(len(line))
	}
}

// residue reports whether a journal line holds zero bytes, which no record
// does: a file system that writes a file's size apart from its data (ext4
// without its journal, xfs) can come back from a power cut with zeros where
// unsynced writes were.
func residue(line []byte) bool { return bytes.IndexByte(line, 0) >= 0 }

// append writes records, each a whole line, in one write and fsyncs them;
// committed is the version its records up to now reach (see markBoot).
func (j *journal) append(lines []byte, committed int64) error {
	if err := markBoot(j.f, committed); err != nil {
		return files.Error("mark", j.path, err)
	}
	if err := seam.Fault(seam.JournalWrite); err != nil {
		return files.Error("append to", j.path, err)
	}
	data := lines
	if end := j.content + int64(len(lines)); end > j.phys {
		// Grow the journal with padding ahead of the records to come: the
		// commits that write over it change no file size.
		data = append(slices.Clip(lines), bytes.Repeat([]byte{pad}, growBy-int(end%growBy))...)
	}
	j.tail = nil
	if n, err := j.f.WriteAt(data, j.content); err != nil {
		// What may be written of the records, for undo to blank: what
		// the write says it wrote, and all that lies in the space the
		// journal had (a write that found the disk full while growing
		// it can leave its first pages there and still report nothing
		// written), but no further, where blanking would need space too.
		j.content += int64(min(len(lines), max(n, int(j.phys-j.content))))
		return files.Error("append to", j.path, err)
	}
	j.phys = max(j.phys, j.content+int64(len(data)))
	j.content += int64(len(lines))
	return j.sync()
}

// size returns where the journal's records end, without its padding (see
// contentEnd): where undo can cut it back to. Only the process that holds
// the journal's lock changes it, so it is measured once, at the opening.
func (j *journal) size() (int64, error) { return j.content, nil }

// undo cuts the journal back to size, taking off the records of a change
// that failed before the ticket file showed them, so that a failed buy
// changes nothing. The cut is fsynced, since a reboot would roll forward
// records beyond the ticket file's version; a failure of that fsync is
// returned as a note, not an error, because the sale is gone from the
// journal either way unless the machine crashes too.
func (j *journal) undo(size int64) (note string, err error) {
	if j.content == size {
		return "", nil
	}
	if err := seam.Fault(seam.JournalUndo); err != nil {
		return "", files.Error("cut", j.path, err)
	}
	if err := j.blank(size); err != nil {
		return "", err
	}
	if err := j.sync(); err != nil {
		return fmt.Sprintf("%v (after taking back a failed sale)", err), nil
	}
	return "", nil
}

func (j *journal) sync() error {
	if j.noSync {
		return nil
	}
	if err := seam.Fault(seam.JournalSync); err != nil {
		return files.Error("fsync", j.path, err)
	}
	if err := fdatasync(j.f); err != nil {
		return files.Error("fsync", j.path, err)
	}
	return nil
}

// readRecords yields the records of the journal at path in order; a line
// that is not a record ends the sequence with an error wrapping
// ticket.ErrInvalid, an unfinished last line with a journalError that says
// so. A missing journal yields nothing.
func readRecords(path string) iter.Seq2[ticket.Record, error] {
	return func(yield func(ticket.Record, error) bool) {
		f, _, err := openJournalToRead(path)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			yield(ticket.Record{}, err)
			return
		}
		defer f.Close()
		r := bufio.NewReaderSize(f, 64<<10)
		for n := 1; ; n++ {
			line, err := r.ReadSlice('\n')
			if errors.Is(err, io.EOF) {
				if len(bytes.TrimLeft(line, " ")) > 0 { // not the padding (see journal)
					yield(ticket.Record{}, &journalError{path: path, problem: fmt.Sprintf("line %d is unfinished (no line end): a buyer crashed while appending", n), unfinished: true})
				}
				return
			}
			if err != nil {
				yield(ticket.Record{}, fmt.Errorf("read %s: line %d: %w", path, n, err))
				return
			}
			if residue(line) {
				yield(ticket.Record{}, &journalError{path: path, problem: fmt.Sprintf("line %d holds zero bytes: what a power cut left of an unfinished write", n), unfinished: true})
				return
			}
			line = bytes.TrimLeft(line, " ")
			if len(line) == 1 {
				continue // padding another program wrote a line after
			}
			s, err := ticket.ParseRecord(line[:len(line)-1])
			if err != nil {
				yield(ticket.Record{}, &journalError{path: path, problem: fmt.Sprintf("line %d: %v", n, err)})
				return
			}
			if !yield(s, nil) {
				return
			}
		}
	}
}

// journalRecords reports how many records beyond an init record the end
// of the journal at path shows (0 or more; it stops reading at 2), and the
// last whole record. A missing or empty journal has none.
func journalRecords(path string) (int, ticket.Record, error) {
	f, info, err := openJournalToRead(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, ticket.Record{}, nil
	}
	if err != nil {
		return 0, ticket.Record{}, err
	}
	defer f.Close()
	n := 0
	size, err := contentEnd(f, path, info.Size())
	if err != nil {
		return 0, ticket.Record{}, err
	}
	entries, _, _, err := tailRecords(f, path, size, func(r ticket.Record) bool {
		if r.Kind != ticket.KindInit {
			n++
		}
		return n >= 2 || r.Kind == ticket.KindInit
	})
	if err != nil || len(entries) == 0 {
		return n, ticket.Record{}, err
	}
	return n, entries[len(entries)-1].Record, nil
}
