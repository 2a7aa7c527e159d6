package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// unsafeBuy is buy --unsafe-no-lock, the buyer of ticket rush --unlocked:
// a deliberately careless program that reads the tickets left, decides
// and writes the count back, without the lock and without the journal (a
// Redis sale: without the script, in separate commands). It is UNSAFE and
// exists only to show what the lock prevents: buyers that read the same
// count overwrite each other's sales (lost updates), so more of them are
// told they got a ticket than there were. The library has no such mode.
func unsafeBuy(ctx context.Context, s store.Backend, buyer string, qty int64, noSync bool) (store.Receipt, error) {
	if r, ok := redisOf(s); ok {
		return r.UnsafeBuy(ctx, buyer, qty)
	}
	f, _ := s.(*hinted).Backend.(*store.Store)
	return unsafeFileBuy(f.Path(), buyer, qty, noSync)
}

// unsafeFileBuy reads the ticket file, takes qty tickets and replaces the
// file (durably unless noSync), all without the lock.
func unsafeFileBuy(path, buyer string, qty int64, noSync bool) (store.Receipt, error) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	info, err := os.Stat(path)
	if err != nil {
		return store.Receipt{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return store.Receipt{}, err
	}
	state, err := ticket.Parse(data)
	if err != nil {
		return store.Receipt{}, fmt.Errorf("%s: invalid ticket file: %w", path, err)
	}
	next, err := state.Take(qty)
	if errors.Is(err, ticket.ErrSoldOut) {
		return store.Receipt{State: state}, err
	} else if err != nil {
		return store.Receipt{State: state}, fmt.Errorf("%s: %w", path, err)
	}
	// A temporary file of its own: unlocked writers sharing one would
	// tear the file instead of merely losing updates.
	tmp := path + ".tmp." + strconv.Itoa(os.Getpid())
	if err := writeFile(tmp, next.Encode(), info.Mode().Perm(), !noSync); err != nil {
		return store.Receipt{State: state}, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return store.Receipt{State: state}, err
	}
	sale := ticket.Record{Seq: next.Version(), Buyer: buyer, Qty: qty, Left: next.Left(), Total: next.Total(), PID: os.Getpid(), Time: time.Now().UTC()}
	return store.Receipt{Sale: sale, State: next}, nil
}

// writeFile writes data to a new file at path, fsynced if sync.
func writeFile(path string, data []byte, perm os.FileMode, sync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}
