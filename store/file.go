package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/ticket"
)

// readState reads and strictly parses the ticket file at path. It returns
// the state and the file's permission bits, which every replacement keeps.
func readState(path string) (ticket.State, fs.FileInfo, error) {
	if err := seam.Fault(seam.Read); err != nil {
		return ticket.State{}, nil, files.Error("read", path, err)
	}
	return loadState(path)
}

// readOpenState is readState keeping the file open, as openState does.
func readOpenState(path string) (ticket.State, fs.FileInfo, io.Closer, error) {
	if err := seam.Fault(seam.Read); err != nil {
		return ticket.State{}, nil, nil, files.Error("read", path, err)
	}
	return openState(path)
}

// loadState is readState without the fault seam, for checks that are
// not a step of a buy (a buy checks the file before creating its lock).
func loadState(path string) (ticket.State, fs.FileInfo, error) {
	st, info, f, err := openState(path)
	if f != nil {
		f.Close()
	}
	return st, info, err
}

// openState is loadState that also returns the ticket file still open
// (nil on error): a writer keeps it to tell, after swapping its new
// version in, whether what it swapped out is the version it read. Its
// FileInfo compares with others through files.SameFile.
func openState(path string) (st ticket.State, info fs.FileInfo, c io.Closer, err error) {
	// A FIFO or device at the path opens without blocking, and is refused
	// once fstat(2) says what it is.
	f, err := files.OpenReading(path)
	if err != nil {
		return st, nil, nil, openError(path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			c = nil
		}
	}()
	if info, err = f.Stat(); err != nil {
		return st, nil, f, files.Error("read", path, err)
	}
	if !info.Mode().IsRegular() {
		return st, nil, f, invalidFile(path, notRegular(info.Mode()))
	}
	if n := files.Links(info); n > 1 {
		return st, nil, f, invalidFile(path, fmt.Sprintf("it has %d names (hard links): each name would become a sale of its own, since every buy replaces the file under the name it was given; remove the other names (find -samefile %s), and copy a sale with a plain copy of each file (cp, never cp -l or cp -al)", n, path))
	}
	if info.Size() > ticket.MaxFileSize {
		return st, nil, f, invalidFile(path, fmt.Sprintf("%d bytes is more than %d", info.Size(), ticket.MaxFileSize))
	}
	data, err := readAll(f, info.Size())
	if err != nil {
		return st, nil, f, files.Error("read", path, err)
	}
	if st, err = ticket.Parse(data); err != nil {
		var fe *ticket.FormatError
		if errors.As(err, &fe) && !fe.Unreadable {
			// Readable, and refused for what someone wrote: not damage.
			return st, nil, f, &refusedError{fmt.Errorf("%s: invalid ticket file: %w", path, err)}
		}
		return st, nil, f, &parseError{fmt.Errorf("%s: invalid ticket file: %w", path, err)}
	}
	return st, info, f, nil
}

// readAll reads f, of size bytes when it was stat'ed, to its end, at
// most ticket.MaxFileSize+1 bytes: in one read(2) unless it grew since.
func readAll(f io.Reader, size int64) ([]byte, error) {
	buf := make([]byte, size+512)
	n, err := f.Read(buf)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if n < len(buf) && int64(n) >= size { // all it had when stat'ed, and no more
		return buf[:n], nil
	}
	rest, err := io.ReadAll(io.LimitReader(f, ticket.MaxFileSize+1-int64(n)))
	return append(buf[:n], rest...), err
}

// parseError is a ticket file whose content is not a JSON object at all
// (ticket.FormatError.Unreadable): what a power cut may leave, and Repair
// rebuilds. It wraps ErrDamaged and
// ticket.ErrInvalid.
type parseError struct{ err error }

func (e *parseError) Error() string { return e.err.Error() }

func (e *parseError) Unwrap() []error { return []error{e.err, ErrDamaged} }

// refusedError is a ticket file that reads as a JSON object but is refused
// for what it says: it wraps ErrRefusedContent and ticket.ErrInvalid.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }

func (e *refusedError) Unwrap() []error { return []error{e.err, ErrRefusedContent} }

// invalidFile is the error for a ticket file refused for what it is.
// notRegular says what a ticket file of this mode is, in the same words
// for every command: "is a directory", or "not a regular file".
func notRegular(mode fs.FileMode) string {
	if mode.IsDir() {
		return "is a directory"
	}
	return "not a regular file"
}

func invalidFile(path, problem string) error {
	return fmt.Errorf("%s: invalid ticket file: %w", path, &ticket.FormatError{Problem: problem})
}

// openError explains a failure to open the ticket file, telling a missing
// file (ErrNotFound) from a dangling symlink and from a ticket file whose
// journal holds the sale (ErrTicketFileMissing).
func openError(path string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return files.Error("read", path, err)
	}
	if target, lerr := os.Readlink(path); lerr == nil {
		return &sentinelError{fmt.Sprintf("%s is a symlink to %s, which does not exist", path, target), []error{ErrNotFound}}
	}
	journal := target(path) + ".journal"
	if n, last, jerr := journalRecords(journal); jerr == nil && (n > 0 || last.Kind == ticket.KindInit) {
		return &sentinelError{fmt.Sprintf("%s does not exist, but its journal %s holds the sale (the last record #%d, %d left): the ticket file was moved or deleted", path, journal, last.Seq, last.Left), []error{ErrTicketFileMissing, ticket.ErrInvalid}}
	}
	return &sentinelError{path + " does not exist", []error{ErrNotFound}}
}

// writer replaces files atomically and, unless noSync, durably.
type writer struct {
	noSync bool

	// spare, if not "", is the sale's spare (PATH.spare): the version of
	// the ticket file before the one at path, kept after the swap below
	// instead of being deleted. The next commit writes over it and swaps
	// it in, so that a commit makes no new file: on ext4 a new inode per
	// commit costs more than the journal's fdatasync. It is written over
	// only when it is a plain file no other process has open (see
	// reuseSpare); otherwise a new file takes its name, or, where its name
	// cannot be freed (a directory, an immutable file, a mount point), the
	// new version is written to tmpPath as without a spare, and warn says
	// so.
	spare string
	warn  func(string)

	// expect, if not nil, describes the file at path as the writer read
	// it under the lock (and still holds open, so that its inode cannot
	// be reused). The new version is then swapped in with the one at
	// path in one step (RENAME_EXCHANGE where the file system has it),
	// and if that was not expect, another process replaced it while this
	// one held the lock (the lock file was deleted while it was held, and
	// the other locked a new one): what it wrote is put in *displaced
	// instead of being lost.
	expect    fs.FileInfo
	displaced *[]byte
}

// replace makes data the new content of path in one step: it writes
// tmpPath (replacing a leftover from a killed writer, or writing over the
// spare), fsyncs it unless noSync, renames it over path (or swaps the
// two) and fsyncs the directory. The new file gets l's permissions and,
// when running as root, its owner (see files.Like). On failure before the
// rename, path is untouched and tmpPath is removed. A failure of the final
// directory fsync happens after the commit: it is returned wrapping
// ErrUnconfirmed.
func (w writer) replace(path, tmpPath string, data []byte, l files.Like) (err error) {
	if err := seam.Fault(seam.TempCreate); err != nil {
		return files.Error("create", tmpPath, err)
	}
	reused, freed := false, false // freed: nothing is left at tmpPath
	if w.spare != "" && w.noSync {
		if reused, err = reuseSpare(w.spare, data, l); err != nil {
			os.Remove(w.spare)
			return files.Error("write", w.spare, err)
		}
		if reused {
			tmpPath = w.spare
		} else if err := os.Remove(w.spare); err == nil || errors.Is(err, fs.ErrNotExist) {
			tmpPath, freed = w.spare, true // a new spare
		} else if w.warn != nil {
			w.warn(fmt.Sprintf("%s cannot be written over or removed (%v): each buy makes a new file until it is removed", w.spare, errors.Unwrap(err)))
		}
	}
	if !reused {
		if !freed {
			if err := os.Remove(tmpPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return files.Error("remove leftover", tmpPath, err)
			}
		}
		if err := w.writeNew(tmpPath, data, l); err != nil {
			return err
		}
	}
	if err := seam.Fault(seam.Rename); err != nil {
		os.Remove(tmpPath)
		return files.Error("rename", tmpPath, err)
	}
	if w.expect != nil && !seam.NoExchange {
		exchanged, err := exchange(tmpPath, path)
		if err != nil {
			os.Remove(tmpPath)
			return files.Error("rename", tmpPath, err)
		}
		if exchanged {
			w.takeDisplaced(tmpPath)
		}
	} else if err := os.Rename(tmpPath, path); err != nil {
		os.Remove(tmpPath)
		return files.Error("rename", tmpPath, err)
	}
	if w.noSync {
		return nil
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%w: %w", ErrUnconfirmed, err)
	}
	return nil
}

// writeNew writes data to a new file at tmpPath, which must be free, with
// l's permissions and owner, fsynced unless noSync. On failure, nothing is
// left at tmpPath.
func (w writer) writeNew(tmpPath string, data []byte, l files.Like) (err error) {
	perm, uid, gid := l.Perm, l.UID, l.GID
	mode := perm
	if mode == 0 {
		mode = 0o666 // a new file: the umask decides
	}
	f, err := files.Open(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return files.Error("create", tmpPath, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmpPath)
		}
	}()
	if perm != 0 {
		if err := f.Chmod(perm); err != nil { // exactly the replaced file's, past the umask
			return files.Error("chmod", tmpPath, err)
		}
	}
	if uid >= 0 && os.Geteuid() == 0 && (uid != 0 || gid != os.Getegid()) {
		if err := f.Chown(uid, gid); err != nil {
			return files.Error("chown", tmpPath, err)
		}
	}
	if err := seam.Fault(seam.TempWrite); err != nil {
		return files.Error("write", tmpPath, err)
	}
	if _, err := f.Write(data); err != nil {
		return files.Error("write", tmpPath, err)
	}
	if !w.noSync {
		if err := seam.Fault(seam.TempSync); err != nil {
			return files.Error("fsync", tmpPath, err)
		}
		if err := fdatasync(f); err != nil {
			return files.Error("fsync", tmpPath, err)
		}
	}
	if err := f.Close(); err != nil {
		return files.Error("close", tmpPath, err)
	}
	return nil
}

// takeDisplaced deals with the file that an exchange put at tmpPath: it
// keeps its content in *w.displaced unless it is w.expect, the version
// read, and then removes it, or keeps it as the spare.
func (w writer) takeDisplaced(tmpPath string) {
	if tmpPath != w.spare {
		defer os.Remove(tmpPath)
	}
	if w.displaced == nil {
		return
	}
	if was, err := os.Lstat(tmpPath); err != nil || files.SameFile(was, w.expect) {
		return
	}
	if data, err := os.ReadFile(tmpPath); err == nil {
		*w.displaced = data
	}
}

// syncDir fsyncs a directory, so that a rename or a new file in it survives
// a crash of the machine.
func syncDir(dir string) error {
	if err := seam.Fault(seam.DirSync); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
