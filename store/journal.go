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

	"github.com/ticketd/ticket/ticket"
	"golang.org/x/sys/unix"
)

// tailWindow is how much of the journal's end recovery reads: several
// whole lines at the longest a line can be (a 200-byte buyer name may grow
// sixfold when escaped). Reading only the tail keeps a buy O(1) in the
// number of sales.
const tailWindow = 16 << 10

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

// recover makes the journal end at the ticket file's version. A crash
// between appending a sale and replacing the ticket file leaves one line
// that was never committed (its seq is version+1), possibly only part of
// one; recover cuts them off and returns a note saying so. Anything else
// that does not match, it refuses with a journalError and changes nothing.
func (j *journal) recover(state ticket.State) (note string, err error) {
	info, err := j.f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat %s: %w", j.path, err)
	}
	size := info.Size()
	start := max(size-tailWindow, 0)
	tail := make([]byte, size-start)
	if _, err := j.f.ReadAt(tail, start); err != nil && !errors.Is(err, io.EOF) {
		return "", ioError("read", j.path, err)
	}
	if size > 0 && !state.Stored() {
		return "", &journalError{path: j.path, problem: "holds sales, but the ticket file was never written by ticket (a seed file beside an old journal?): start a new sale with ticket init --force, which keeps the old journal"}
	}
	cut := size // where the journal should end
	var notes []string
	if len(tail) > 0 && tail[len(tail)-1] != '\n' {
		nl := bytes.LastIndexByte(tail, '\n')
		if nl < 0 && start > 0 {
			return "", &journalError{path: j.path, problem: fmt.Sprintf("last %d bytes hold no line end", len(tail))}
		}
		cut = start + int64(nl+1)
		notes = append(notes, "an unfinished line")
		tail = tail[:nl+1]
	}
	last, lastStart, ok, err := lastSale(tail)
	if err != nil {
		return "", &journalError{path: j.path, problem: err.Error()}
	}
	if ok && last.Seq == state.Version+1 {
		// Committed sales end one before it: the crashed buyer never replaced the file.
		notes = append(notes, fmt.Sprintf("sale #%d (%d to %s), never committed to the ticket file", last.Seq, last.Qty, last.Buyer))
		cut = start + int64(lastStart)
		last, _, ok, err = lastSale(tail[:lastStart])
		if err != nil {
			return "", &journalError{path: j.path, problem: err.Error()}
		}
		if !ok && start > 0 {
			return "", &journalError{path: j.path, problem: "cannot find the sale before an uncommitted one"}
		}
	}
	switch {
	case !ok && state.Version != 0:
		return "", &journalError{path: j.path, problem: fmt.Sprintf("holds no sales but the ticket file is at version %d", state.Version)}
	case ok && last.Seq != state.Version:
		return "", &journalError{path: j.path, problem: fmt.Sprintf("last sale is #%d but the ticket file is at version %d", last.Seq, state.Version)}
	case ok && last.Left != state.Left:
		return "", &journalError{path: j.path, problem: fmt.Sprintf("last sale #%d left %d tickets but the ticket file says %d", last.Seq, last.Left, state.Left)}
	}
	if cut == size {
		return "", nil
	}
	if err := fault(stepJournalCut); err != nil {
		return "", ioError("cut", j.path, err)
	}
	if err := j.f.Truncate(cut); err != nil {
		return "", ioError("cut", j.path, err)
	}
	if err := j.sync(); err != nil {
		return "", err
	}
	note = fmt.Sprintf("%s: cut what a crashed buyer left: ", j.path)
	for i, n := range notes {
		if i > 0 {
			note += " and "
		}
		note += n
	}
	return note, nil
}

// lastSale parses the last line of buf, which is empty or ends in a newline.
// It returns the sale, the offset where its line starts, and whether there
// was one.
func lastSale(buf []byte) (ticket.Sale, int, bool, error) {
	if len(buf) == 0 {
		return ticket.Sale{}, 0, false, nil
	}
	lineStart := bytes.LastIndexByte(buf[:len(buf)-1], '\n') + 1
	s, err := ticket.ParseSale(buf[lineStart : len(buf)-1])
	if err != nil {
		return ticket.Sale{}, 0, false, fmt.Errorf("last line is not a sale: %w", err)
	}
	return s, lineStart, true, nil
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

// undo cuts the journal back to size, taking off the sale of a buy that
// failed before its commit point, so that a failed buy changes nothing. It
// does not fsync: a failed fsync is never retried, and if the cut is lost
// the line is an uncommitted tail that the next lock holder cuts.
func (j *journal) undo(size int64) error {
	now, err := j.size()
	if err != nil || now == size {
		return err
	}
	if err := fault(stepJournalUndo); err != nil {
		return ioError("cut", j.path, err)
	}
	if err := j.f.Truncate(size); err != nil {
		return ioError("cut", j.path, err)
	}
	return nil
}

func (j *journal) sync() error {
	if j.noSync {
		return nil
	}
	if err := fault(stepJournalSync); err != nil {
		return ioError("fsync", j.path, err)
	}
	if err := unix.Fdatasync(int(j.f.Fd())); err != nil {
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
