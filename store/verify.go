package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ticketd/ticket/store/holders"
	"github.com/ticketd/ticket/store/holds"
	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/store/lock"
	"github.com/ticketd/ticket/ticket"
)

// Verify checks the sale without changing anything: the ticket file is
// valid; the journal's records run on from its first without gaps or
// repeats, each one's "left" and "total" following from the one before;
// total = left + the tickets sold (and sold before the journal began, as
// its init record says); and the journal's last committed record is the
// ticket file's version (see ticket.Ledger). It holds the lock (and the
// journal's) while it reads, so that it sees a ticket file and a journal
// that belong together.
//
// What the next writer settles is reported in Pending, not as a problem:
// records a crashed buyer left uncommitted (cut), records a reboot left
// committed beyond the ticket file (written), an unfinished last line
// (cut), and a count another process changed under the lock (recorded as
// taken or added outside ticket), and holds that expired (released as
// lapsed). These are counted as they will be.
//
// It returns an error only when it cannot check (the ticket file is missing
// or invalid, the lock is busy past ctx, I/O fails); an unbalanced journal
// is a Report with Problems.
func (s *Store) Verify(ctx context.Context) (Report, error) {
	p := s.paths()
	var r Report
	_, info, err := readState(p.ticket) // for the lock file's permissions
	if err != nil {
		return r, err
	}
	unlock, err := s.lock(ctx, p, files.LikeFile(info))
	if err != nil {
		return r, err
	}
	defer unlock()
	if j, err := lockJournalToRead(p.journal); err != nil {
		return r, err
	} else if j != nil {
		defer j.Close()
	}
	file, _, err := readState(p.ticket) // again: it may have changed while we waited
	if err != nil {
		return r, err
	}
	r.State = file
	var l ticket.Ledger
	st, serr := settleFile(p.journal, file)
	if serr != nil {
		l.Problem("%v", serr)
	} else {
		// Expired holds are counted as released; the next writer
		// records it.
		if err := st.lapseReading(p.holds, p.journal, time.Now()); err != nil {
			l.Problem("%v", err)
		}
		r.State = st.state
	}
	// The journal's committed end: the ticket file's version, or beyond
	// it by what a reboot left.
	limit := file.Version() + int64(len(st.rolled))
	if !file.Stored() {
		limit = r.State.Version()
	}
	for rec, err := range readRecords(p.journal) {
		if err != nil {
			var je *journalError
			if !errors.As(err, &je) || !je.unfinished {
				l.Problem("%v", err)
			}
			break
		}
		if serr == nil && rec.Seq > limit {
			break // cut by the next buy: never committed
		}
		l.Add(rec)
	}
	var pending []string
	if serr == nil && r.State.Limit() != 0 {
		pending = append(pending, checkHoldings(&l, p.holders, st)...)
	}
	if serr == nil {
		pending = append(pending, checkHolds(&l, p.holds, st)...)
	}
	if len(st.rolled) > 0 {
		pending = append(pending, describe(st.rolled)+" committed to the journal before a restart but not yet to the ticket file (the next buy writes them)")
	}
	if len(st.cut) > 0 {
		pending = append(pending, describe(st.cut)+" never committed: a buyer died before it replaced the ticket file (the next buy cuts them)")
	}
	if st.unfinished {
		pending = append(pending, "an unfinished last line was never committed (the next buy cuts it)")
	}
	if st.unversioned {
		pending = append(pending, `the ticket file has no "version" member (rewritten by another program?): it is taken as the journal's last record, and the next buy writes it whole`)
	}
	for _, rec := range st.add {
		if rec.Kind == ticket.KindInit {
			l.Add(rec) // written with the first record: its books count
			continue
		}
		pending = append(pending, fmt.Sprintf("#%d: %s: another process changed the ticket file's count under the lock (the next buy records it)", rec.Seq, rec.Describe()))
		l.Add(rec)
	}
	for _, rec := range st.lapsed {
		pending = append(pending, fmt.Sprintf("#%d: %s (expired; the next writer records it)", rec.Seq, rec.Describe()))
		l.Add(rec)
	}
	r.Pending = strings.Join(pending, "; ")
	l.Check(r.State, "the journal's last record", "the ticket file")
	r.Counts, r.Booked, r.Problems = l.Counts(), l.Bookings(), l.Problems()
	return r, nil
}

// checkHoldings compares the index of each buyer's holding with the
// journal's, at the journal's committed end: the ledger l has read the
// records up to there, and no further. An index that is missing, or behind
// (its next writer rolls it forward), is not compared.
//
// A damaged index is not the books: it is returned as pending, with what
// to do, for a writer only rebuilds what it reads.
func checkHoldings(l *ticket.Ledger, path string, st settlement) []string {
	x, ok, err := holders.Open(path, st.committed, st.last)
	if err != nil {
		l.Problem("%v", err)
		return nil
	}
	if !ok {
		return nil
	}
	defer x.Close()
	const remedy = "remove it (or repair the sale), and the next writer rebuilds it from the journal"
	want := l.Holders()
	for _, name := range slices.Sorted(maps.Keys(want)) {
		n, err := x.Holding(name)
		if errors.Is(err, holders.ErrDamaged) {
			return []string{fmt.Sprintf("%s does not check (damaged): %s", path, remedy)}
		}
		if err != nil {
			l.Problem("%s: %v: %s", path, err, remedy)
			return nil
		}
		if n != want[name] {
			l.Problem("%s says %q has %d tickets, the journal %d: %s", path, name, n, want[name], remedy)
			return nil
		}
	}
	n, err := x.Buyers()
	switch {
	case errors.Is(err, holders.ErrDamaged):
		return []string{fmt.Sprintf("%s does not check (damaged): %s", path, remedy)}
	case err != nil || n != len(want):
		l.Problem("%s lists %d buyers with tickets, the journal %d (%v): %s", path, n, len(want), err, remedy)
	}
	return nil
}

// checkHolds compares the index of open holds with the journal's, at the
// journal's committed end, as checkHoldings does.
func checkHolds(l *ticket.Ledger, path string, st settlement) []string {
	x, ok, err := holds.Open(path, st.committed, st.last)
	if err != nil {
		l.Problem("%v", err)
		return nil
	}
	if !ok {
		return nil
	}
	defer x.Close()
	got, err := x.Open()
	if errors.Is(err, holds.ErrDamaged) {
		return []string{fmt.Sprintf("%s does not check (damaged): remove it (or repair the sale), and the next writer rebuilds it from the journal", path)}
	}
	if err != nil {
		l.Problem("%s: %v: remove it, and the next writer rebuilds it from the journal", path, err)
		return nil
	}
	if want := l.OpenHolds(); !slices.EqualFunc(got, want, func(a, b ticket.Hold) bool {
		return a.ID == b.ID && a.Buyer == b.Buyer && a.Qty == b.Qty && a.Expires.Equal(b.Expires)
	}) {
		l.Problem("%s lists %d open holds, not the %d the journal leaves open: remove it, and the next writer rebuilds it from the journal", path, len(got), len(want))
	}
	return nil
}

// lockJournalToRead opens the journal at path, if there is one, to read
// it, and locks it as a writer does (see openJournal): a user who may only
// read the sale can verify it.
func lockJournalToRead(path string) (*os.File, error) {
	f, info, err := lock.OpenLocked(path, os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, files.Error("open journal", path, err)
	}
	if err := checkJournal(info, path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// openExistingJournal locks the journal at path, if there is one, as
// openJournal does, without creating it.
func openExistingJournal(path string) (*journal, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return openJournal(path, files.Like{UID: -1}, true)
}
