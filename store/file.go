package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ticketd/ticket/ticket"
)

// readState reads and strictly parses the ticket file at path. It returns
// the state and the file's permission bits, which every replacement keeps.
func readState(path string) (ticket.State, fs.FileInfo, error) {
	if err := fault(stepRead); err != nil {
		return ticket.State{}, nil, ioError("read", path, err)
	}
	return loadState(path)
}

// readOpenState is readState keeping the file open, as openState does.
func readOpenState(path string) (ticket.State, fs.FileInfo, *os.File, error) {
	if err := fault(stepRead); err != nil {
		return ticket.State{}, nil, nil, ioError("read", path, err)
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
// (nil on error). A writer keeps it open until it has released the lock:
// while it is open, replacing the file does not free the old version's
// blocks, which would make the rename several times slower.
func openState(path string) (st ticket.State, info fs.FileInfo, f *os.File, err error) {
	// A FIFO or device would block open or read: look before opening.
	if info, err := os.Stat(path); err == nil && !info.IsDir() && !info.Mode().IsRegular() {
		return st, nil, nil, invalidFile(path, "not a regular file")
	}
	if f, err = os.Open(path); err != nil {
		return st, nil, nil, openError(path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			f = nil
		}
	}()
	if info, err = f.Stat(); err != nil {
		return st, nil, f, ioError("read", path, err)
	}
	if info.IsDir() {
		return st, nil, f, invalidFile(path, "is a directory")
	}
	if !info.Mode().IsRegular() {
		return st, nil, f, invalidFile(path, "not a regular file")
	}
	if n := links(info); n > 1 {
		return st, nil, f, invalidFile(path, fmt.Sprintf("it has %d names (hard links): each name would become a sale of its own, since every buy replaces the file under the name it was given; remove the other names (find -samefile %s) or make a copy", n, path))
	}
	if info.Size() > ticket.MaxFileSize {
		return st, nil, f, invalidFile(path, fmt.Sprintf("%d bytes is more than %d", info.Size(), ticket.MaxFileSize))
	}
	data, err := io.ReadAll(io.LimitReader(f, ticket.MaxFileSize+1))
	if err != nil {
		return st, nil, f, ioError("read", path, err)
	}
	if st, err = ticket.Parse(data); err != nil {
		return st, nil, f, &parseError{fmt.Errorf("%s: invalid ticket file: %w%s", path, err, repairHint(path))}
	}
	return st, info, f, nil
}

// repairHint says how to rebuild a ticket file that does not parse when its
// journal holds records: after a power cut, that is the likely cause.
func repairHint(path string) string {
	journal := target(path) + ".journal"
	if info, err := os.Stat(journal); err != nil || info.Size() == 0 {
		return ""
	}
	return fmt.Sprintf(" (if a power cut damaged it, ticket repair rebuilds it from %s, as of its last record)", journal)
}

// parseError is a ticket file whose content does not parse: what a power
// cut may leave, and Repair rebuilds. It wraps ticket.ErrInvalid.
type parseError struct{ err error }

func (e *parseError) Error() string { return e.err.Error() }

func (e *parseError) Unwrap() error { return e.err }

// invalidFile is the error for a ticket file refused for what it is.
func invalidFile(path, problem string) error {
	return fmt.Errorf("%s: invalid ticket file: %w", path, &ticket.FormatError{Problem: problem})
}

// openError explains a failure to open the ticket file, telling a missing
// file (run ticket init) from a dangling symlink and from other errors.
func openError(path string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return ioError("read", path, err)
	}
	if target, lerr := os.Readlink(path); lerr == nil {
		return notFound(fmt.Sprintf("%s is a symlink to %s, which does not exist", path, target))
	}
	journal := target(path) + ".journal"
	if n, last, jerr := journalRecords(journal); jerr == nil && (n > 0 || last.Kind == ticket.KindInit) {
		return &missingError{path: path, journal: journal, last: last}
	}
	return notFound(path + " does not exist (create it with: ticket init --count N)")
}

// missingError is a ticket file that is gone while its journal holds
// records: ErrTicketFileMissing.
type missingError struct {
	path, journal string
	last          ticket.Sale
}

func (e *missingError) Error() string {
	return fmt.Sprintf("%s does not exist, but its journal %s holds the sale (the last record #%d, %d left): the ticket file was moved or deleted; put it back, or rebuild it from the journal with ticket repair", e.path, e.journal, e.last.Seq, e.last.Left)
}

func (e *missingError) Is(target error) bool {
	return target == ErrTicketFileMissing || target == ticket.ErrInvalid
}

// notFound is ErrNotFound with a message of its own.
func notFound(msg string) error { return sentinelError{msg, ErrNotFound} }

// sentinelError is a sentinel error with a message that says it better:
// errors.Is matches the sentinel, and the message does not repeat it.
type sentinelError struct {
	msg      string
	sentinel error
}

func (e sentinelError) Error() string { return e.msg }

func (e sentinelError) Is(target error) bool { return target == e.sentinel }

// writer replaces files atomically and, unless noSync, durably.
type writer struct {
	noSync bool

	// pre, if not nil, is an unnamed temporary file (see newTempFile) in
	// the target's directory, made before the lock was taken: replace
	// writes it and links it as tmpPath instead of creating tmpPath, which
	// keeps the inode allocation out of the critical section.
	pre *os.File
}

// replace makes data the new content of path in one step: it writes
// tmpPath (replacing a leftover from a killed writer), fsyncs it, renames it
// over path and fsyncs the directory. It gives the new file permissions perm
// (0: 0666 narrowed by the umask)
// and, when running as root, the owner uid:gid (a negative uid keeps the
// creator's). On failure before the rename, path is untouched and tmpPath is
// removed. A failure of the final directory fsync happens after the commit:
// it is returned wrapping ErrUnconfirmed.
func (w writer) replace(path, tmpPath string, data []byte, perm fs.FileMode, uid, gid int) (err error) {
	if err := fault(stepTempCreate); err != nil {
		return ioError("create", tmpPath, err)
	}
	if err := os.Remove(tmpPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ioError("remove leftover", tmpPath, err)
	}
	mode := perm
	if mode == 0 {
		mode = 0o666 // a new file: the umask decides
	}
	f, named := w.pre, false
	if f == nil {
		var err error
		if f, err = os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode); err != nil {
			return ioError("create", tmpPath, err)
		}
		named = true
	}
	committed := false
	defer func() {
		if !committed {
			if w.pre == nil {
				f.Close()
			}
			if named {
				os.Remove(tmpPath)
			}
		}
	}()
	if perm != 0 {
		if err := f.Chmod(perm); err != nil { // exactly the replaced file's, past the umask
			return ioError("chmod", tmpPath, err)
		}
	}
	if uid >= 0 && os.Geteuid() == 0 && (uid != 0 || gid != os.Getegid()) {
		if err := f.Chown(uid, gid); err != nil {
			return ioError("chown", tmpPath, err)
		}
	}
	if err := fault(stepTempWrite); err != nil {
		return ioError("write", tmpPath, err)
	}
	if _, err := f.Write(data); err != nil {
		return ioError("write", tmpPath, err)
	}
	if !w.noSync {
		if err := fault(stepTempSync); err != nil {
			return ioError("fsync", tmpPath, err)
		}
		if err := fdatasync(f); err != nil {
			return ioError("fsync", tmpPath, err)
		}
	}
	if w.pre != nil {
		if err := linkTemp(f, tmpPath); err != nil {
			return ioError("create", tmpPath, err)
		}
		named = true
	} else if err := f.Close(); err != nil {
		return ioError("close", tmpPath, err)
	}
	if err := fault(stepRename); err != nil {
		return ioError("rename", tmpPath, err)
	}
	if err := os.Rename(tmpPath, path); err != nil {
		return ioError("rename", tmpPath, err)
	}
	committed = true
	if w.noSync {
		return nil
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%w: %w", ErrUnconfirmed, err)
	}
	return nil
}

// syncDir fsyncs a directory, so that a rename or a new file in it survives
// a crash of the machine.
func syncDir(dir string) error {
	if err := fault(stepDirSync); err != nil {
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

// ioError describes a failed operation on a file in one line: what was
// done to which file, then the system's reason without repeating them
// (os errors name the operation and the file again), saying plainly when
// the disk is full. It keeps err's chain for errors.Is.
func ioError(op, path string, err error) error {
	// Only an error that is itself about path: one wrapped with words of
	// its own keeps them.
	switch e := err.(type) {
	case *fs.PathError:
		if e.Path == path {
			err = e.Err
		}
	case *os.LinkError:
		if e.Old == path {
			err = e.Err
		}
	}
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%s %s: the disk is full: %w", op, path, err)
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

// links returns the number of names of a file, or 1 where unknown.
func links(info fs.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// owner returns the uid and gid of a file, or -1, -1 where unknown.
func owner(info fs.FileInfo) (int, int) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}
