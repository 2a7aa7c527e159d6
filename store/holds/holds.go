// Package holds keeps the open holds of a ticket sale in a file of its own,
// PATH.holds, so that a hold, a confirm and the expiry of holds cost the
// same beside ten thousand open holds as beside none: a hold is found by
// its id with one look-up, and the holds that expired are taken from the
// front of a queue ordered by expiry, in proportion to how many expired.
//
// The file is an index derived from the journal, never the truth: the
// ticket file keeps "held", the journal every hold, confirm and release,
// and whatever is wrong with the index, the journal rebuilds it. It holds
// a hash table of fixed slots, one per hold (its number, tickets, expiry,
// buyer, and whether it is still open), and a binary heap of (expiry,
// number) pairs, from which a closed hold is dropped when it comes to the
// front. Both are written in place.
//
// Only a process holding the sale's lock opens it for writing (Sync),
// once the journal and the ticket file agree on a version; its header
// names the journal record the index reflects (the anchor, as package
// store/holders does). Changes are made in memory first (Expired, Stage)
// and written by Apply once the transaction is committed; a process killed
// while Apply writes leaves the header marked dirty, and the next Sync
// rebuilds the index from the journal, as it does in another boot (a
// power cut may have kept any part of what was written), for an anchor the
// journal does not hold, or for a file that does not check.
package holds

import (
	"cmp"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ticketd/ticket/store/internal/derived"
	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/ticket"
)

// Journal is what the index reads of the sale's journal when it is
// behind or has to be rebuilt.
type Journal = derived.Journal

const (
	magic      = "TKTHOLD2"
	headerSize = 4096
	slotSize   = 256
	entrySize  = 16
	minSlots   = 64
)

// Header offsets.
const (
	hMagic   = 0
	hSlots   = 8  // the table's slots, a power of two
	hUsed    = 16 // slots in use, open or closed
	hHeapLen = 24
	hHeapCap = 32
	hApplied = 40
	hAnchor  = 48
	hDirty   = 56 // 1 while Apply writes
	hBoot    = 64
	hSum     = 72
	hEnd     = 80
)

// Slot offsets.
const (
	sSeq     = 0 // the hold record's number; 0 for an empty slot
	sQty     = 8
	sExpires = 16 // Unix nanoseconds
	sTag     = 24 // the random part of the id
	sOpen    = 28 // 1 while open
	sNameLen = 32
	sName    = 36
	sSum     = 248
)

type header struct {
	slots, used      uint64
	heapLen, heapCap uint64
	applied          int64
	anchor           uint64
	dirty            bool
	boot             uint64
}

// entry is one heap entry: when hold seq expires.
type entry struct{ expires, seq int64 }

func less(a, b entry) bool { return a.expires < b.expires || a.expires == b.expires && a.seq < b.seq }

// slot is one hold.
type slot struct {
	seq, qty, expires int64
	tag               uint32
	open              bool
	buyer             string
}

func (s slot) hold() ticket.Hold {
	return ticket.Hold{ID: idOf(s.seq, s.tag), Buyer: s.buyer, Qty: s.qty, Expires: time.Unix(0, s.expires).UTC()}
}

func idOf(seq int64, tag uint32) string {
	b := strconv.AppendInt(nil, seq, 10)
	b = append(b, '-')
	h := strconv.FormatUint(uint64(tag), 16)
	b = append(b, "00000000"[len(h):]...)
	return string(append(b, h...))
}

// Index is the open index of a sale's holds. It is not safe for use by
// several goroutines at once.
type Index struct {
	f      *os.File
	path   string
	like   files.Like
	h      header
	noSync bool

	version int64
	last    *ticket.Record
	journal Journal

	// What this transaction changed, not yet written: slots and heap
	// entries by offset, the heap's length.
	slots   map[int64]slot
	entries map[int64]entry
	heapLen uint64

	// Created reports that Sync found no file: the index was built, not
	// rebuilt.
	Created bool

	// Rebuilds counts the times Sync rebuilt the index (0 or 1).
	Rebuilds int
}

// ErrDamaged reports an index that does not check (a slot or entry
// damaged, the file cut short) where it cannot be rebuilt: in a reader, or
// a second time in one transaction. A reader then does without it.
var ErrDamaged = errors.New("damaged index: rebuilt from the journal by the next writer")

// errStale is an index that cannot be used as it is: rebuilt.
var errStale = ErrDamaged

// Sync opens the index at path for a sale whose ticket file and journal
// are at version, last being the journal's record at that version, and
// brings it up to that version (see the package doc). held is the sale's
// tickets held at that version: with none, no hold is open, and an index
// that is not at that version starts again empty without reading the
// journal. It must be called with the sale's lock held.
func Sync(path string, like files.Like, version int64, last *ticket.Record, j Journal, held int64, noSync bool) (*Index, error) {
	f, created, err := derived.OpenOrCreate(path, like)
	if err != nil {
		return nil, err
	}
	x := &Index{f: f, path: path, like: like, noSync: noSync, Created: created, version: version, last: last, journal: j}
	err = x.catchUp(held)
	if errors.Is(err, errStale) {
		if held == 0 {
			err = x.replace(version, derived.Anchor(last), nil, false)
		} else {
			err = x.rebuild()
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return x, nil
}

// Open opens the index at path to read it without the lock (show, watch):
// ok is false when there is none, or when it is not anchored at version
// with record last, clean, so that it cannot be read. What it reads may
// change under it: a reader takes it as a moment's view.
func Open(path string, version int64, last *ticket.Record) (x *Index, ok bool, err error) {
	f, err := derived.OpenToRead(path)
	if f == nil || err != nil {
		return nil, false, err
	}
	x = &Index{f: f, path: path, version: version, last: last}
	if err := x.load(); err != nil || x.h.dirty || x.h.applied != version || x.h.anchor != derived.Anchor(last) {
		f.Close()
		if err != nil && !errors.Is(err, errStale) {
			return nil, false, err
		}
		return nil, false, nil
	}
	x.reset()
	return x, true, nil
}

// Close closes the index, forgetting what was not applied.
func (x *Index) Close() error { return x.f.Close() }

func (x *Index) reset() {
	x.slots, x.entries, x.heapLen = map[int64]slot{}, map[int64]entry{}, x.h.heapLen
}

// catchUp brings an index that exists up to x.version by the records
// since its anchor, or returns errStale.
func (x *Index) catchUp(held int64) error {
	if err := x.load(); err != nil {
		return err
	}
	x.reset()
	b := derived.BootSum()
	if x.h.dirty || b == 0 || x.h.boot != b || x.h.applied > x.version || x.h.applied == 0 {
		return errStale
	}
	if x.h.applied == x.version {
		if x.h.anchor != derived.Anchor(x.last) {
			return errStale
		}
		return nil
	}
	if held == 0 {
		return errStale // started again empty: nothing to read
	}
	records, err := x.journal.From(x.h.applied)
	if err != nil {
		return err
	}
	if len(records) == 0 || records[0].Seq != x.h.applied || derived.Anchor(&records[0]) != x.h.anchor {
		return errStale
	}
	return x.Apply(records[1:])
}

func (x *Index) load() error {
	var b [hEnd]byte
	n, err := x.f.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return files.Error("read", x.path, err)
	}
	if n < hEnd || string(b[hMagic:hMagic+8]) != magic || derived.Sum(b[:hSum]) != binary.LittleEndian.Uint64(b[hSum:]) {
		return errStale
	}
	u := func(off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
	h := header{slots: u(hSlots), used: u(hUsed), heapLen: u(hHeapLen), heapCap: u(hHeapCap),
		applied: int64(u(hApplied)), anchor: u(hAnchor), dirty: u(hDirty) != 0, boot: u(hBoot)}
	if h.slots < minSlots || h.slots&(h.slots-1) != 0 || h.slots > 1<<36 || h.used > h.slots || h.heapLen > h.heapCap || h.heapCap > 1<<40 || h.applied < 0 {
		return errStale
	}
	info, err := x.f.Stat()
	if err != nil {
		return files.Error("stat", x.path, err)
	}
	if info.Size() < x.heapOff(h)+int64(h.heapCap)*entrySize {
		return errStale
	}
	x.h = h
	return nil
}

func (x *Index) heapOff(h header) int64 { return headerSize + int64(h.slots)*slotSize }

func encodeHeader(h header) []byte {
	b := make([]byte, hEnd)
	copy(b, magic)
	p := func(off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }
	p(hSlots, h.slots)
	p(hUsed, h.used)
	p(hHeapLen, h.heapLen)
	p(hHeapCap, h.heapCap)
	p(hApplied, uint64(h.applied))
	p(hAnchor, h.anchor)
	if h.dirty {
		p(hDirty, 1)
	}
	p(hBoot, h.boot)
	p(hSum, derived.Sum(b[:hSum]))
	return b
}

func (x *Index) writeHeader(h header) error {
	h.boot = derived.BootSum()
	if _, err := x.f.WriteAt(encodeHeader(h), 0); err != nil {
		return files.Error("write", x.path, err)
	}
	x.h = h
	return nil
}

// readSlot returns slot i, as changed in this transaction.
func (x *Index) readSlot(i uint64) (slot, error) {
	off := headerSize + int64(i)*slotSize
	if s, ok := x.slots[off]; ok {
		return s, nil
	}
	var b [slotSize]byte
	if _, err := x.f.ReadAt(b[:], off); errors.Is(err, io.EOF) {
		return slot{}, errStale // cut short since it was opened
	} else if err != nil {
		return slot{}, files.Error("read", x.path, err)
	}
	return decodeSlot(b[:])
}

func decodeSlot(b []byte) (slot, error) {
	le := binary.LittleEndian
	var s slot
	s.seq = int64(le.Uint64(b[sSeq:]))
	if s.seq == 0 {
		if le.Uint64(b[sSum:]) != 0 {
			return s, errStale
		}
		return s, nil
	}
	if derived.Sum(b[:sSum]) != le.Uint64(b[sSum:]) {
		return s, errStale
	}
	s.qty, s.expires = int64(le.Uint64(b[sQty:])), int64(le.Uint64(b[sExpires:]))
	s.tag, s.open = le.Uint32(b[sTag:]), le.Uint32(b[sOpen:]) == 1
	n := le.Uint32(b[sNameLen:])
	if n > ticket.MaxBuyerLen || s.qty < 1 || s.seq < 0 {
		return s, errStale
	}
	s.buyer = string(b[sName : sName+n])
	return s, nil
}

func encodeSlot(b []byte, s slot) {
	le := binary.LittleEndian
	clear(b[:slotSize])
	le.PutUint64(b[sSeq:], uint64(s.seq))
	le.PutUint64(b[sQty:], uint64(s.qty))
	le.PutUint64(b[sExpires:], uint64(s.expires))
	le.PutUint32(b[sTag:], s.tag)
	if s.open {
		le.PutUint32(b[sOpen:], 1)
	}
	le.PutUint32(b[sNameLen:], uint32(copy(b[sName:sSum], s.buyer)))
	le.PutUint64(b[sSum:], derived.Sum(b[:sSum]))
}

// find returns the slot index of hold seq, or of the empty slot where it
// would go.
func (x *Index) find(seq int64) (uint64, slot, error) {
	mask := x.h.slots - 1
	i := mix(uint64(seq)) & mask
	for range x.h.slots {
		s, err := x.readSlot(i)
		if err != nil {
			return 0, slot{}, err
		}
		if s.seq == 0 || s.seq == seq {
			return i, s, nil
		}
		i = (i + 1) & mask
	}
	return 0, slot{}, errStale
}

// recover rebuilds an index found damaged (a slot that does not check, a
// queue entry that disagrees with its slot, a file cut short) in a writer,
// once, and reports whether the operation may be tried again.
//
// What the transaction changed in memory so far is dropped with the
// damaged index: the records it decides are applied again by Apply, a
// confirm of a hold staged in the same batch goes back to be made alone,
// and Expired starts again.
func (x *Index) recover(err error) bool {
	if !errors.Is(err, errStale) || x.journal == nil || x.Rebuilds > 0 { // a reader, or rebuilt once
		return false
	}
	x.reset()
	return x.rebuild() == nil
}

// Find returns the open hold with id, as this transaction leaves it.
func (x *Index) Find(id string) (ticket.Hold, bool, error) {
	h, ok, err := x.findHold(id)
	if x.recover(err) {
		h, ok, err = x.findHold(id)
	}
	return h, ok, err
}

func (x *Index) findHold(id string) (ticket.Hold, bool, error) {
	seq, err := ticket.HoldSeq(id)
	if err != nil {
		return ticket.Hold{}, false, nil
	}
	_, s, err := x.find(seq)
	if err != nil || s.seq == 0 || !s.open || s.hold().ID != id {
		return ticket.Hold{}, false, err
	}
	return s.hold(), true, nil
}

func (x *Index) entryAt(i uint64) (entry, error) {
	off := x.heapOff(x.h) + int64(i)*entrySize
	if e, ok := x.entries[off]; ok {
		return e, nil
	}
	var b [entrySize]byte
	if _, err := x.f.ReadAt(b[:], off); errors.Is(err, io.EOF) {
		return entry{}, errStale
	} else if err != nil {
		return entry{}, files.Error("read", x.path, err)
	}
	return entry{int64(binary.LittleEndian.Uint64(b[:])), int64(binary.LittleEndian.Uint64(b[8:]))}, nil
}

func (x *Index) setEntry(i uint64, e entry) {
	x.entries[x.heapOff(x.h)+int64(i)*entrySize] = e
}

// Expired removes from the front of the queue, in this transaction, the
// holds that expired at now (expiry not after now) and returns those still
// open, soonest first. A closed hold met at the front is dropped.
func (x *Index) Expired(now time.Time) ([]ticket.Hold, error) {
	out, err := x.expired(now)
	if x.recover(err) {
		out, err = x.expired(now)
	}
	return out, err
}

func (x *Index) expired(now time.Time) ([]ticket.Hold, error) {
	var out []ticket.Hold
	for x.heapLen > 0 {
		top, err := x.entryAt(0)
		if err != nil {
			return nil, err
		}
		_, s, err := x.find(top.seq)
		if err != nil {
			return nil, err
		}
		open := s.seq == top.seq && s.open
		if open && s.expires != top.expires {
			return nil, errStale // the queue disagrees with the slot (which checks)
		}
		if open && s.expires > now.UnixNano() {
			break
		}
		if err := x.pop(); err != nil {
			return nil, err
		}
		if open {
			out = append(out, s.hold())
		}
	}
	return out, nil
}

func (x *Index) pop() error {
	x.heapLen--
	if x.heapLen == 0 {
		return nil
	}
	last, err := x.entryAt(x.heapLen)
	if err != nil {
		return err
	}
	i := uint64(0)
	for {
		l, r := 2*i+1, 2*i+2
		small, se := i, last
		if l < x.heapLen {
			le, err := x.entryAt(l)
			if err != nil {
				return err
			}
			if less(le, se) {
				small, se = l, le
			}
		}
		if r < x.heapLen {
			re, err := x.entryAt(r)
			if err != nil {
				return err
			}
			if less(re, se) {
				small, se = r, re
			}
		}
		if small == i {
			x.setEntry(i, last)
			return nil
		}
		x.setEntry(i, se)
		i = small
	}
}

func (x *Index) push(e entry) error {
	i := x.heapLen
	x.heapLen++
	for i > 0 {
		p := (i - 1) / 2
		pe, err := x.entryAt(p)
		if err != nil {
			return err
		}
		if !less(e, pe) {
			break
		}
		x.setEntry(i, pe)
		i = p
	}
	x.setEntry(i, e)
	return nil
}

// Stage applies record r (a hold, confirm or release) in this transaction
// before it is committed, so that the next request decided in the same
// transaction finds the hold opened or closed (group commit's batches).
func (x *Index) Stage(r ticket.Record) error {
	err := x.stage(r)
	if x.recover(err) {
		err = x.stage(r)
	}
	return err
}

func (x *Index) stage(r ticket.Record) error {
	switch r.Kind {
	case ticket.KindHold:
		seq, tag, err := splitID(r.Hold)
		if err != nil || seq != r.Seq {
			return errStale
		}
		if (x.h.used+1)*2 > x.h.slots || x.heapLen+1 > x.h.heapCap {
			if err := x.grow(); err != nil {
				return err
			}
		}
		i, s, err := x.find(seq)
		if err != nil {
			return err
		}
		if s.seq == 0 {
			x.h.used++
		}
		x.slots[headerSize+int64(i)*slotSize] = slot{seq: seq, qty: r.Qty, expires: r.Expires.UnixNano(), tag: tag, open: true, buyer: r.Buyer}
		return x.push(entry{r.Expires.UnixNano(), seq})
	case ticket.KindConfirm, ticket.KindRelease:
		seq, _, err := splitID(r.Hold)
		if err != nil {
			return errStale
		}
		i, s, err := x.find(seq)
		if err != nil {
			return err
		}
		if s.seq == seq && s.open {
			s.open = false
			x.slots[headerSize+int64(i)*slotSize] = s
		}
	}
	return nil
}

// Apply applies records, committed after the version the index reflects
// and in order, with what Expired and Stage changed in this transaction
// (records already staged change nothing more), writes it all and anchors
// the index at the last record. A record that does not follow leaves the
// index marked for a rebuild.
func (x *Index) Apply(records []ticket.Record) error {
	if len(records) == 0 && len(x.slots) == 0 && len(x.entries) == 0 {
		return nil
	}
	seq := x.h.applied
	for _, r := range records {
		if r.Seq != seq+1 {
			return x.markDirty()
		}
		seq = r.Seq
		if r.Kind == ticket.KindHold {
			if _, s, err := x.find(r.Seq); err == nil && s.seq == r.Seq {
				continue // staged
			}
		}
		if err := x.stage(r); err != nil {
			if errors.Is(err, errStale) {
				return x.markDirty()
			}
			return err
		}
	}
	h := x.h
	h.dirty = true
	if err := x.writeHeader(h); err != nil {
		return err
	}
	for _, off := range slices.Sorted(maps.Keys(x.slots)) {
		var b [slotSize]byte
		encodeSlot(b[:], x.slots[off])
		if _, err := x.f.WriteAt(b[:], off); err != nil {
			return files.Error("write", x.path, err)
		}
	}
	for _, off := range slices.Sorted(maps.Keys(x.entries)) {
		var b [entrySize]byte
		e := x.entries[off]
		binary.LittleEndian.PutUint64(b[:], uint64(e.expires))
		binary.LittleEndian.PutUint64(b[8:], uint64(e.seq))
		if _, err := x.f.WriteAt(b[:], off); err != nil {
			return files.Error("write", x.path, err)
		}
	}
	seam.Crash(seam.HoldsApplied)
	h.dirty, h.heapLen = false, x.heapLen
	if len(records) > 0 {
		h.applied, h.anchor = seq, derived.Anchor(&records[len(records)-1])
	}
	if err := x.writeHeader(h); err != nil {
		return err
	}
	x.reset()
	return nil
}

func (x *Index) markDirty() error {
	h := x.h
	h.dirty = true
	return x.writeHeader(h)
}

// grow writes the index again, twice the size, with the open holds alone:
// closed holds are dropped from the table and the queue.
func (x *Index) grow() error {
	open, err := x.openSlots()
	if err != nil {
		return err
	}
	// Written with this transaction's changes, dirty until Apply: if the
	// transaction is not committed, the next Sync rebuilds it.
	return x.replace(x.h.applied, x.h.anchor, open, true)
}

// openSlots returns the open holds, as this transaction leaves them.
func (x *Index) openSlots() ([]slot, error) {
	var open []slot
	for i := range x.h.slots {
		s, err := x.readSlot(i)
		if err != nil {
			return nil, err
		}
		if s.seq != 0 && s.open {
			open = append(open, s)
		}
	}
	return open, nil
}

// Open returns the open holds, soonest to expire first: for Verify and
// for copying a sale.
func (x *Index) Open() ([]ticket.Hold, error) {
	slots, err := x.openSlots()
	if x.recover(err) {
		slots, err = x.openSlots()
	}
	if err != nil {
		return nil, err
	}
	out := make([]ticket.Hold, len(slots))
	for i, s := range slots {
		out[i] = s.hold()
	}
	slices.SortFunc(out, func(a, b ticket.Hold) int {
		return cmp.Or(a.Expires.Compare(b.Expires), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// rebuild builds the index from the whole journal, up to x.version.
func (x *Index) rebuild() error {
	x.Rebuilds++
	open := map[int64]slot{}
	for r, err := range x.journal.All() {
		if err != nil {
			return err
		}
		if r.Seq > x.version {
			break
		}
		switch r.Kind {
		case ticket.KindHold:
			seq, tag, err := splitID(r.Hold)
			if err != nil {
				continue // verify reports it
			}
			open[seq] = slot{seq: seq, qty: r.Qty, expires: r.Expires.UnixNano(), tag: tag, open: true, buyer: r.Buyer}
		case ticket.KindConfirm, ticket.KindRelease:
			if seq, _, err := splitID(r.Hold); err == nil {
				delete(open, seq)
			}
		}
	}
	return x.replace(x.version, derived.Anchor(x.last), slices.Collect(maps.Values(open)), false)
}

// replace writes an index holding the open holds to a new file and
// renames it over x's, marked dirty if asked.
func (x *Index) replace(applied int64, anchor uint64, open []slot, dirty bool) error {
	h := header{slots: minSlots, applied: applied, anchor: anchor, used: uint64(len(open)), dirty: dirty}
	for uint64(len(open)+1)*4 > h.slots {
		h.slots *= 2
	}
	h.heapCap = h.slots
	h.heapLen = uint64(len(open))
	h.boot = derived.BootSum()
	b := make([]byte, headerSize+h.slots*slotSize+h.heapCap*entrySize)
	copy(b, encodeHeader(h))
	mask := h.slots - 1
	heap := make([]entry, 0, len(open))
	for _, s := range open {
		i := mix(uint64(s.seq)) & mask
		for binary.LittleEndian.Uint64(b[headerSize+i*slotSize:]) != 0 {
			i = (i + 1) & mask
		}
		encodeSlot(b[headerSize+i*slotSize:], s)
		heap = append(heap, entry{s.expires, s.seq})
	}
	slices.SortFunc(heap, func(a, b entry) int { // a sorted array is a heap
		return cmp.Or(cmp.Compare(a.expires, b.expires), cmp.Compare(a.seq, b.seq))
	})
	off := headerSize + h.slots*slotSize
	for i, e := range heap {
		binary.LittleEndian.PutUint64(b[off+uint64(i)*entrySize:], uint64(e.expires))
		binary.LittleEndian.PutUint64(b[off+uint64(i)*entrySize+8:], uint64(e.seq))
	}
	f, err := derived.Replace(x.path, x.like, b, x.noSync)
	if err != nil {
		return err
	}
	x.f.Close()
	x.f, x.h = f, h
	x.reset()
	return nil
}

func splitID(id string) (int64, uint32, error) {
	seq, err := ticket.HoldSeq(id)
	if err != nil {
		return 0, 0, err
	}
	tag, err := strconv.ParseUint(id[strings.IndexByte(id, '-')+1:], 16, 32)
	return seq, uint32(tag), err
}

// mix spreads hold numbers, which come in runs, over the table.
func mix(v uint64) uint64 {
	v ^= v >> 33
	v *= 0xff51afd7ed558ccd
	v ^= v >> 33
	return v
}
