package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ticketd/ticket/ticket"
)

// tailWindow is how much of the journal's end recovery reads: several
// whole lines at the longest a line can be (a 200-byte buyer name may grow
// sixfold when escaped). Reading only the tail keeps a buy O(1) in the
// number of sales.
const tailWindow = 4 << 10

// journalError is a journal that does not balance with the ticket file. It
// matches both ErrJournal and ticket.ErrInvalid.
type journalError struct {
	path       string
	problem    string
	unfinished bool // the last line has no line end: a crashed append
}

func (e *journalError) Error() string { return e.path + ": " + e.problem }

func (e *journalError) Is(target error) bool {
	return target == ErrJournal || target == ticket.ErrInvalid
}

// journal is the sales journal opened for appending under the lock.
type journal struct {
	path   string
	f      *os.File
	noSync bool
}

// openJournal opens the journal for appending, creating it (see createFile)
// if it is missing, as it is beside a seed file that has never been sold from.
func openJournal(path string, l like, noSync bool) (*journal, error) {
	if err := fault(stepJournalOpen); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) { // beside a seed file: create it once
		created, cerr := createFile(path, l)
		if cerr != nil {
			return nil, ioError("create journal", path, cerr)
		}
		if created && !noSync {
			// The new journal's name must be on disk before a sale in it
			// can be committed: a later rename's directory fsync may come
			// too late.
			if err := syncDir(filepath.Dir(path)); err != nil {
				return nil, err
			}
		}
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	}
	if err != nil {
		return nil, ioError("open journal", path, err)
	}
	return &journal{path: path, f: f, noSync: noSync}, nil
}

func (j *journal) Close() error { return j.f.Close() }

// recover brings state up to the journal, which is where a sale is
// committed. A buyer killed after appending its sale but before replacing
// the ticket file leaves whole lines beyond the file's version: they are
// committed sales, and recover rolls the state forward over them, checking
// that each follows from the one before (it fsyncs the journal first, since
// the killed buyer may not have). A buyer killed in the middle of its
// append leaves an unfinished last line, which no one was ever told about:
// recover cuts it. It returns the state with every committed sale applied,
// how many sales it rolled forward, and a note saying what it repaired ("" if
// nothing). A journal that does not fit the ticket file is refused with a
// journalError, and nothing is changed.
func (j *journal) recover(state ticket.State) (ticket.State, int, string, error) {
	info, err := j.f.Stat()
	if err != nil {
		return state, 0, "", fmt.Errorf("stat %s: %w", j.path, err)
	}
	size := info.Size()
	rolled, pending, end, err := scanTail(j.f, j.path, size, state)
	if err != nil {
		return state, 0, "", err
	}
	if end != size {
		if err := fault(stepJournalCut); err != nil {
			return state, 0, "", ioError("cut", j.path, err)
		}
		if err := j.f.Truncate(end); err != nil {
			return state, 0, "", ioError("cut", j.path, err)
		}
	}
	if end != size || len(pending) > 0 {
		if err := j.sync(); err != nil {
			return state, 0, "", err
		}
	}
	var notes []string
	for _, s := range pending {
		notes = append(notes, fmt.Sprintf("sale #%d (%d to %s)", s.Seq, s.Qty, s.Buyer))
	}
	var note string
	if len(pending) > 0 {
		note = fmt.Sprintf("%s: completed what a crashed buyer committed: %s", j.path, strings.Join(notes, ", "))
	}
	if end != size {
		if note != "" {
			note += "; "
		} else {
			note = j.path + ": "
		}
		note += "cut an unfinished line a crashed buyer left"
	}
	return rolled, len(pending), note, nil
}

// scanTail reads the end of the journal f (size bytes long, at path) back to
// the sale at state's version and returns state rolled forward over the
// whole lines after it, those sales, and where the journal's whole lines
// end (before an unfinished last line). It changes nothing.
func scanTail(f *os.File, path string, size int64, state ticket.State) (ticket.State, []ticket.Sale, int64, error) {
	if size > 0 && !state.Stored() {
		return state, nil, 0, &journalError{path: path, problem: "holds sales, but the ticket file was never written by ticket (a seed file beside an old journal?): start a new sale with ticket init --force, which keeps the old journal"}
	}
	sales, found, end, err := tailSales(f, path, size, func(s ticket.Sale) bool { return s.Seq <= state.Version })
	if err != nil {
		return state, nil, 0, err
	}
	pending := sales // whole lines beyond the ticket file's version
	if found {
		anchor := sales[0] // the sale at the ticket file's version
		pending = sales[1:]
		switch {
		case anchor.Seq != state.Version:
			return state, nil, 0, &journalError{path: path, problem: fmt.Sprintf("last sale is #%d but the ticket file is at version %d", anchor.Seq, state.Version)}
		case anchor.Left != state.Left:
			return state, nil, 0, &journalError{path: path, problem: fmt.Sprintf("sale #%d left %d tickets but the ticket file says %d", anchor.Seq, anchor.Left, state.Left)}
		}
	} else if state.Version != 0 {
		return state, nil, 0, &journalError{path: path, problem: fmt.Sprintf("holds no sale #%d, but the ticket file is at version %d", state.Version, state.Version)}
	}
	for _, s := range pending {
		next, err := state.Take(s.Qty)
		if err != nil || s.Seq != next.Version || s.Left != next.Left {
			return state, nil, 0, &journalError{path: path, problem: fmt.Sprintf("sale #%d (%d, %d left) does not follow version %d of the ticket file (%d left)", s.Seq, s.Qty, s.Left, state.Version, state.Left)}
		}
		state = next
	}
	return state, pending, end, nil
}

// salesFrom returns the journal's sales numbered from..to, by number,
// reading back from the end only as far as it must. Numbers run up by one,
// so below from nothing more is in range (a journal replaced since, by
// init --force or copy --force, may hold none).
func (j *journal) salesFrom(from, to int64) (map[int64]ticket.Sale, error) {
	size, err := j.size()
	if err != nil {
		return nil, err
	}
	sales, _, _, err := tailSales(j.f, j.path, size, func(s ticket.Sale) bool { return s.Seq < from })
	if err != nil {
		return nil, err
	}
	m := map[int64]ticket.Sale{}
	for _, s := range sales {
		if s.Seq >= from && s.Seq <= to {
			m[s.Seq] = s
		}
	}
	return m, nil
}

// tailSales parses the whole lines of the journal f (size bytes long, at
// path) backwards from its end until stop accepts a sale or the journal's
// start is reached, and returns those sales in journal order (the accepted
// one first), whether stop accepted one, and where the whole lines end
// (before an unfinished last line, which is no sale). Lines before the
// accepted one are not read: a buy stays O(1) in the number of sales.
func tailSales(f *os.File, path string, size int64, stop func(ticket.Sale) bool) (sales []ticket.Sale, found bool, end int64, err error) {
	for window := int64(tailWindow); ; window *= 2 {
		start := max(size-window, 0)
		buf := make([]byte, size-start)
		if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
			return nil, false, 0, ioError("read", path, err)
		}
		nl := bytes.LastIndexByte(buf, '\n')
		if nl < 0 && start > 0 {
			continue // an unfinished line longer than the window
		}
		buf = buf[:nl+1]
		end = start + int64(nl+1)
		sales = sales[:0]
		cut := false
		for len(buf) > 0 && !found {
			lineStart := bytes.LastIndexByte(buf[:len(buf)-1], '\n') + 1
			if lineStart == 0 && start > 0 {
				cut = true // this line may begin before the window: read more
				break
			}
			s, err := ticket.ParseSale(buf[lineStart : len(buf)-1])
			if err != nil {
				return nil, false, 0, &journalError{path: path, problem: fmt.Sprintf("the line at byte %d is not a sale: %v", start+int64(lineStart), err)}
			}
			sales = append(sales, s)
			found = stop(s)
			buf = buf[:lineStart]
		}
		if !cut {
			slices.Reverse(sales)
			return sales, found, end, nil
		}
	}
}

// append writes one sale as one line and fsyncs it.
func (j *journal) append(line []byte) error {
	if err := fault(stepJournalWrite); err != nil {
		return ioError("append to", j.path, err)
	}
	if _, err := j.f.Write(line); err != nil {
		return ioError("append to", j.path, err)
	}
	return j.sync()
}

// size returns the journal's length, where undo can cut it back to.
func (j *journal) size() (int64, error) {
	info, err := j.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", j.path, err)
	}
	return info.Size(), nil
}

// undo cuts the journal back to size, taking off the sales of a change
// that failed before the ticket file showed them, so that a failed buy
// changes nothing. The cut is fsynced, since a whole line in the journal is
// a committed sale and a cut lost in a crash would bring it back; a failure
// of that fsync is returned as a note, not an error, because the sale is
// gone from the journal either way unless the machine crashes too.
func (j *journal) undo(size int64) (note string, err error) {
	now, err := j.size()
	if err != nil || now == size {
		return "", err
	}
	if err := fault(stepJournalUndo); err != nil {
		return "", ioError("cut", j.path, err)
	}
	if err := j.f.Truncate(size); err != nil {
		return "", ioError("cut", j.path, err)
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
	if err := fault(stepJournalSync); err != nil {
		return ioError("fsync", j.path, err)
	}
	if err := fdatasync(j.f); err != nil {
		return ioError("fsync", j.path, err)
	}
	return nil
}

// readSales yields the sales of the journal at path in order, with each
// line's number; a line that is not a sale ends the sequence with an error
// wrapping ticket.ErrInvalid. A missing journal yields nothing.
func readSales(path string) iter.Seq2[ticket.Sale, error] {
	return func(yield func(ticket.Sale, error) bool) {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			yield(ticket.Sale{}, fmt.Errorf("read journal: %w", err))
			return
		}
		defer f.Close()
		r := bufio.NewReaderSize(f, 64<<10)
		for n := 1; ; n++ {
			line, err := r.ReadSlice('\n')
			if errors.Is(err, io.EOF) {
				if len(line) > 0 {
					yield(ticket.Sale{}, &journalError{path: path, problem: fmt.Sprintf("line %d is unfinished (no line end): a buyer crashed while appending", n), unfinished: true})
				}
				return
			}
			if err != nil {
				yield(ticket.Sale{}, fmt.Errorf("read %s: line %d: %w", path, n, err))
				return
			}
			s, err := ticket.ParseSale(line[:len(line)-1])
			if err != nil {
				yield(ticket.Sale{}, &journalError{path: path, problem: fmt.Sprintf("line %d: %v", n, err)})
				return
			}
			if !yield(s, nil) {
				return
			}
		}
	}
}
