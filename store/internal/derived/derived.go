// Package derived is what the indexes a sale keeps beside its journal
// (packages store/holds and store/holders) share: the journal they are
// derived from, the anchor that names the record an index reflects, the
// checksum of their headers and slots, the boot they were written in, and
// how their files are opened and replaced.
package derived

import (
	"errors"
	"hash/fnv"
	"io/fs"
	"iter"
	"os"

	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/ticket"
)

// Journal is what an index reads of the sale's journal to roll forward or
// to be rebuilt.
type Journal interface {
	// From returns the journal's records from number seq (that record
	// first, if the journal holds it) up to the sale's version, in order.
	From(seq int64) ([]ticket.Record, error)
	// All yields the journal's records up to the sale's version, in order.
	All() iter.Seq2[ticket.Record, error]
}

// Anchor returns the checksum that names record r in an index's header:
// of its journal line, never 0; 0 for no record.
func Anchor(r *ticket.Record) uint64 {
	if r == nil {
		return 0
	}
	return Sum(r.AppendLine(nil)) | 1
}

// Sum is the checksum of an index's header and slots: FNV-1a, 64 bits.
func Sum(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// BootSum names this boot of the machine; 0 where unknown. Tests replace
// it to play another boot.
var BootSum = func() uint64 {
	b := files.BootID()
	if len(b) == 0 {
		return 0
	}
	return Sum(b) | 1
}

// OpenOrCreate opens the index at path to read and write, creating it
// with like's permissions and owner if it is missing, and reports whether
// it did. Another process may remove it in between (a user deleting the
// index): it is created again.
func OpenOrCreate(path string, like files.Like) (*os.File, bool, error) {
	created := false
	for range 3 {
		f, err := files.Open(path, os.O_RDWR, 0)
		if err == nil {
			return f, created, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, false, files.Error("open", path, err)
		}
		c, err := files.Create(path, like)
		if err != nil {
			return nil, false, files.Error("create", path, err)
		}
		created = created || c
	}
	return nil, false, files.Error("open", path, errors.New("removed again and again while it was opened"))
}

// OpenToRead opens the index at path to read it: nil, and no error, when
// there is none.
func OpenToRead(path string) (*os.File, error) {
	f, err := files.Open(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, files.Error("open", path, err)
	}
	return f, nil
}

// Replace writes data to path+".tmp" (like's permissions and owner),
// synced unless noSync, renames it over path and returns it open: a
// process killed meanwhile leaves the old index, or the new one, whole.
func Replace(path string, like files.Like, data []byte, noSync bool) (*os.File, error) {
	tmp := path + ".tmp"
	if _, err := files.Create(tmp, like); err != nil {
		return nil, files.Error("create", tmp, err)
	}
	f, err := files.Open(tmp, os.O_RDWR|os.O_TRUNC, 0)
	if err != nil {
		return nil, files.Error("open", tmp, err)
	}
	_, err = f.WriteAt(data, 0)
	if err == nil && !noSync {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, files.Error("write", tmp, err)
	}
	return f, nil
}
