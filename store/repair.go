package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/ticket"
)

// Repair brings a sale back to where buying can go on, without ever
// selling a ticket twice: it never raises the count of a ticket file it
// can parse, and rebuilds only what cannot be read. Under the lock:
//
//   - A ticket file that does not parse (what a power cut may leave on a
//     file system whose renames are not atomic across a crash, such as ext4
//     without its journal or xfs), or that is missing while its journal
//     holds records (moved or deleted), is rebuilt from the journal: its
//     records are checked from the first (numbers running up by one, each
//     one's left and total following from the one before) and the ticket
//     file is written, durably, as the last one leaves the sale. A damaged
//     file is moved aside to PATH.damaged.TIME, never deleted. Members it
//     had besides count, total, sold and version cannot be recovered, nor a
//     change another process made after the journal's last record.
//   - A ticket file that parses is settled with its journal as the next
//     buy would settle it (see Read): records committed beyond it (a
//     restart, a ticket file put back to an older version) are written
//     into it, records a crashed buyer never committed are cut, a count
//     another process changed is recorded as such. Where that process sold
//     tickets the committed records had sold too (ticket.OversoldError),
//     nothing can unsell them: the tickets the books still had are recorded
//     as taken outside ticket, the sale is sold out, and the note says how
//     many were sold twice.
//   - A ticket file ahead of its journal (the journal was cut, replaced or
//     restored from an older copy; ErrJournalBehind) is kept as it is: the
//     journal is moved aside to PATH.journal.TIME and a new one starts with
//     an init record at the ticket file's version and count.
//
// A journal that does not balance, or holds nothing to rebuild from, is
// refused with an error wrapping ErrJournal, and nothing is changed.
func (s *Store) Repair(ctx context.Context) (Repaired, error) {
	p := s.paths()
	info, err := os.Stat(p.ticket)
	missing := errors.Is(err, fs.ErrNotExist)
	switch {
	case missing:
		if _, err := os.Lstat(p.ticket); err == nil {
			return Repaired{}, openError(s.path, fs.ErrNotExist) // a dangling link
		}
		if info, err = os.Stat(p.journal); err != nil {
			return Repaired{}, openError(s.path, fs.ErrNotExist)
		}
	case err != nil:
		return Repaired{}, openError(s.path, err)
	case !info.Mode().IsRegular():
		return Repaired{}, invalidFile(s.path, notRegular(info.Mode())+": move it away first")
	}
	unlock, err := s.lock(ctx, p, files.LikeFile(info))
	if err != nil {
		return Repaired{}, err
	}
	defer unlock()
	// The index of holdings is derived: whatever state it is in, the next
	// writer builds it again from the journal.
	if err := removeIndexes(p); err != nil {
		return Repaired{}, err
	}
	file, _, err := readState(p.ticket)
	var pe *parseError
	switch {
	case err == nil:
		return s.settleRepair(p, file)
	case errors.As(err, &pe), errors.Is(err, fs.ErrNotExist), errors.Is(err, ErrNotFound), errors.Is(err, ErrTicketFileMissing):
		j, err := openExistingJournal(p.journal)
		if err != nil {
			return Repaired{}, err
		}
		if j != nil {
			defer j.Close()
		}
		return s.rebuild(p, j, info, !missing)
	}
	return Repaired{}, err // unreadable, or refused for what it is: not damage Repair can mend
}

// settleRepair is Repair of a ticket file that parses.
func (s *Store) settleRepair(p paths, file ticket.State) (Repaired, error) {
	st, err := settleFile(p.journal, file)
	var oversold *ticket.OversoldError
	switch {
	case errors.Is(err, ErrJournalBehind):
		return s.restartJournal(p, file)
	case errors.As(err, &oversold):
		return s.repairOversold(p, file, oversold)
	case err != nil:
		return Repaired{}, err
	}
	if !st.changes() && len(st.cut) == 0 && !st.unfinished {
		return Repaired{State: st.state}, nil
	}
	return s.settleLocked(p, st.note(p.ticket))
}

// repairOversold is Repair of a sale where another process sold tickets
// that the journal's committed records had sold too (see
// ticket.RollForward): nothing can unsell them, and the sale cannot go on
// with fewer than none left. The ticket file is put at the journal's last
// record with none left, and the next settlement records the tickets the
// books still had as taken outside ticket: the sale is sold out, and the
// note says how many were sold twice, which only the people who sold them
// can settle.
func (s *Store) repairOversold(p paths, file ticket.State, e *ticket.OversoldError) (Repaired, error) {
	soldOut, err := ticket.At(e.Books.Version(), 0, e.Books.Total())
	if err != nil {
		return Repaired{}, fmt.Errorf("%s: %w", p.ticket, err)
	}
	info, err := os.Stat(p.ticket)
	if err != nil {
		return Repaired{}, files.Error("stat", p.ticket, err)
	}
	if err := (writer{noSync: s.opts.NoSync}).replace(p.ticket, p.tmp, soldOut.WithMembersOf(file).Encode(), files.LikeFile(info)); err != nil {
		return Repaired{}, err
	}
	note := fmt.Sprintf("%s: %v; the sale is sold out", p.ticket, e)
	if n := e.Books.Left(); n > 0 {
		note = fmt.Sprintf("%s: %v; recorded those %d as taken outside ticket: the sale is sold out", p.ticket, e, n)
	}
	return s.settleLocked(p, note)
}

// settleLocked ends Repair of a ticket file that parses, with the locks
// held: it runs the transaction as a buy of nothing would, which writes
// the settlement; note says what was settled.
func (s *Store) settleLocked(p paths, note string) (Repaired, error) {
	var r Repaired
	// The locks are held: run the transaction as a buy of nothing would.
	l := files.Like{UID: -1}
	if info, err := os.Stat(p.ticket); err == nil {
		l = files.LikeFile(info)
	}
	err := s.locked(p, l, func(state ticket.State, _ *journal) (ticket.State, []ticket.Record, error) {
		r.State = state
		return state, nil, nil
	}, nil)
	if err != nil {
		return Repaired{}, err
	}
	r.Note = note
	return r, nil
}

// restartJournal is Repair of a ticket file ahead of its journal: the
// ticket file's count stands, and a new journal starts from it.
func (s *Store) restartJournal(p paths, file ticket.State) (Repaired, error) {
	total := file.Total()
	if total < file.Left() {
		total = file.Left() + file.Sold()
	}
	state, err := ticket.At(file.Version(), file.Left(), total)
	if err != nil {
		return Repaired{}, fmt.Errorf("%s: %w", p.ticket, err)
	}
	state = state.WithMembersOf(file)
	if old, err := openExistingJournal(p.journal); err != nil { // held while it is archived
		return Repaired{}, err
	} else if old != nil {
		defer old.Close()
	}
	archive, err := archiveJournal(p.journal)
	if err != nil {
		return Repaired{}, err
	}
	info, err := os.Stat(p.ticket)
	if err != nil {
		return Repaired{}, files.Error("stat", p.ticket, err)
	}
	j, err := openJournal(p.journal, files.LikeFile(info), s.opts.NoSync)
	if err != nil {
		return Repaired{}, err
	}
	defer j.Close()
	init := ticket.Record{Seq: state.Version(), Kind: ticket.KindInit, Left: state.Left(), Total: state.Total(), Time: time.Now().UTC()}
	if err := j.append(init.AppendLine(nil), state.Version()); err != nil {
		return Repaired{}, err
	}
	if err := (writer{noSync: s.opts.NoSync}).replace(p.ticket, p.tmp, state.Encode(), files.LikeFile(info)); err != nil {
		return Repaired{}, err
	}
	if err := markVisible(j.f, state.Version()); err != nil {
		return Repaired{}, files.Error("mark", p.journal, err)
	}
	note := fmt.Sprintf("%s: the journal ended before the ticket file's version %d: kept it as %s and started a new one from the ticket file's count", p.ticket, file.Version(), archive)
	if archive == "" {
		note = fmt.Sprintf("%s: the ticket file is at version %d and there was no journal: started one from the ticket file's count", p.ticket, file.Version())
	}
	return Repaired{State: state, Archive: archive, Note: note}, nil
}

// rebuild is Repair of a ticket file that does not parse (damaged: kept
// aside) or is missing, from the journal.
func (s *Store) rebuild(p paths, j *journal, info fs.FileInfo, damaged bool) (Repaired, error) {
	var l ticket.Ledger
	for rec, err := range readRecords(p.journal) {
		if err != nil {
			var je *journalError
			if errors.As(err, &je) && je.unfinished {
				break // never committed
			}
			return Repaired{}, err
		}
		l.Add(rec)
	}
	if l.Len() == 0 && len(l.Problems()) == 0 {
		return Repaired{}, &journalError{path: p.journal, problem: "holds no records to rebuild the ticket file from"}
	}
	state, err := l.Books()
	if err != nil {
		return Repaired{}, &journalError{path: p.journal, problem: "cannot rebuild the ticket file from it: " + err.Error()}
	}
	kept := ""
	if damaged {
		// Moved aside, not linked: a crash before the new file is in place
		// leaves no ticket file (which the next repair rebuilds), never one
		// with two names (which every command refuses).
		kept = p.ticket + ".damaged." + files.Stamp(time.Now())
		if err := os.Rename(p.ticket, kept); err != nil {
			return Repaired{}, files.Error("keep the damaged file as", kept, err)
		}
	}
	if err := (writer{noSync: s.opts.NoSync}).replace(p.ticket, p.tmp, state.Encode(), files.LikeFile(info)); err != nil {
		return Repaired{}, err
	}
	done := Repaired{State: state, Sales: int64(l.Len()), Kept: kept}
	if j == nil {
		return done, nil
	}
	if err := markVisible(j.f, state.Version()); err != nil {
		return done, files.Error("mark", j.path, err)
	}
	// What follows the last whole record was never committed: cut it, as
	// the next buy would.
	if size, err := j.size(); err != nil {
		return done, err
	} else if end, err := wholeEnd(j.f, j.path); err != nil {
		return done, err
	} else if end != size {
		if err := j.recoverLocked(settlement{end: end}); err != nil {
			return done, err
		}
		done.Note = j.path + ": cut an unfinished line a crashed buyer left (or what a power cut left of one)"
	}
	return done, nil
}
