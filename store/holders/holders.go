// Package holders keeps each buyer's holding of a sale with a per-buyer
// limit (tickets bought and not returned, plus held) in a file of its own,
// PATH.holders, so that the limit is checked with one look-up however many
// sales and buyers the journal holds.
//
// The file is an index derived from the journal, never the truth: whatever
// is wrong with it, the journal rebuilds it. It is a hash table of fixed
// slots written in place, one slot per buyer, behind a header that names
// the journal record the table reflects (its version and a checksum of the
// record's line, the anchor). Only a process holding the sale's lock opens
// it for writing (Sync), after the journal and the ticket file agree on a
// version:
//
//   - anchored at that version: used as it is;
//   - anchored at an earlier record the journal still holds: rolled
//     forward by the records since, read from the end of the journal;
//   - anything else (no file, a header that does not check, an anchor the
//     journal does not hold: a ticket file put back, a journal replaced, a
//     sale copied): rebuilt from the whole journal, once.
//
// A slot keeps the sequence number of the last record applied to it, and a
// record is applied to a slot only if it is later, so applying records
// twice changes nothing: a process killed half-way through an update
// leaves a table the next one rolls forward from the header's anchor.
//
// Nothing is synced per sale: the journal is what is durable. After a
// power cut, slots and header may each have reached the disk or not; the
// header also keeps a checkpoint, an anchor up to which the table was
// synced (every few thousand records), and in another boot than the one
// that last wrote it, the table is rolled forward from that checkpoint
// instead, which the slots' sequence numbers make safe.
//
// A buyer's slot is keyed by 128 bits of the FNV-1a hash of the name. Two
// names with one key would share one holding: the limit would then refuse
// more, never allow more than it should.
package holders

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"

	"github.com/ticketd/ticket/store/internal/derived"
	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/ticket"
)

// Journal is what the index reads of the sale's journal when it is
// behind or has to be rebuilt.
type Journal = derived.Journal

const (
	magic      = "TKTHOLD1"
	headerSize = 4096 // the header has the first page to itself
	slotSize   = 64
	minSlots   = 64
	// checkpointEvery is how many records may be applied between two
	// syncs of the table: what a roll-forward after a power cut reads at
	// most.
	checkpointEvery = 4096
	// probeRead is how many slots one read brings in while probing.
	probeRead = 8
)

// Header offsets.
const (
	hMagic        = 0
	hSlots        = 8
	hUsed         = 16
	hApplied      = 24
	hAnchor       = 32
	hSynced       = 40
	hSyncedAnchor = 48
	hBoot         = 56
	hSum          = 64
	hEnd          = 72
)

// Slot offsets.
const (
	sKey     = 0
	sHolding = 16
	sSeq     = 24
	sSum     = 32
	sEnd     = 40
)

type key [16]byte

type header struct {
	slots, used  uint64
	applied      int64  // the version the table reflects
	anchor       uint64 // checksum of that record's line; 0 for version 0
	synced       int64  // the version the table was last synced at
	syncedAnchor uint64
	boot         uint64 // the boot that last wrote the table
}

// Index is the open table of a sale's holdings. It is not safe for use by
// several goroutines at once.
type Index struct {
	f      *os.File
	path   string
	like   files.Like
	h      header
	noSync bool

	version int64          // the sale's version Sync brought the table to
	last    *ticket.Record // the record at that version
	journal Journal

	staged map[key]int64 // changes of records decided, not yet applied

	// Created reports that Sync found no file: the index was built, not
	// rebuilt.
	Created bool

	// Rebuilds counts the times the table was rebuilt from the journal
	// since Sync (0 or 1), for tests and reports.
	Rebuilds int
}

// errStale reports a table that does not follow the journal: rebuilt.
var errStale = ErrDamaged

// ErrDamaged reports an index that does not check (a slot damaged, the
// file cut short) where it cannot be rebuilt: in a reader, or a second
// time in one transaction.
var ErrDamaged = errors.New("damaged index: rebuilt from the journal by the next writer")

// Sync opens the table at path for a sale whose ticket file and journal
// are at version, last being the journal's record at that version (nil if
// the journal has none), and brings it up to that version: used as it is,
// rolled forward, or rebuilt from j (see the package doc). A new file gets
// like's permissions and owner. It must be called with the sale's lock
// held. noSync skips the syncs of the table (see checkpointEvery), as the
// journal skips its own.
func Sync(path string, like files.Like, version int64, last *ticket.Record, j Journal, noSync bool) (*Index, error) {
	f, created, err := derived.OpenOrCreate(path, like)
	if err != nil {
		return nil, err
	}
	x := &Index{f: f, path: path, like: like, noSync: noSync, Created: created, version: version, last: last, journal: j}
	err = x.catchUp()
	if errors.Is(err, errStale) {
		err = x.rebuild()
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return x, nil
}

// Open opens the table at path for reading alone (Verify): it returns
// ok false when there is none, or when it is not anchored at version with
// record last (behind, or stale), so that it cannot be compared.
func Open(path string, version int64, last *ticket.Record) (x *Index, ok bool, err error) {
	f, err := derived.OpenToRead(path)
	if f == nil || err != nil {
		return nil, false, err
	}
	x = &Index{f: f, path: path, version: version, last: last}
	if err := x.load(); err != nil || x.h.applied != version || x.h.anchor != derived.Anchor(last) {
		f.Close()
		if err != nil && !errors.Is(err, errStale) {
			return nil, false, err
		}
		return nil, false, nil
	}
	return x, true, nil
}

// Close closes the table.
func (x *Index) Close() error { return x.f.Close() }

// catchUp brings a table that exists up to x.version, or returns errStale.
func (x *Index) catchUp() error {
	if err := x.load(); err != nil {
		return err
	}
	from, anchor := x.h.applied, x.h.anchor
	sameBoot := sameBoot(x.h)
	if !sameBoot {
		from, anchor = x.h.synced, x.h.syncedAnchor
	}
	switch {
	case from > x.version:
		return errStale // the ticket file went back, or the journal was replaced
	case from == x.version:
		if anchor != derived.Anchor(x.last) {
			return errStale
		}
		if !sameBoot {
			return x.writeHeader(func(h *header) { h.applied, h.anchor = from, anchor })
		}
		return nil
	case from == 0:
		return errStale // nothing applied yet: the whole journal, by a rebuild
	}
	records, err := x.journal.From(from)
	if err != nil {
		return err
	}
	if len(records) == 0 || records[0].Seq != from || derived.Anchor(&records[0]) != anchor {
		return errStale
	}
	return x.apply(records[1:], from)
}

// load reads and checks the header; errStale for an empty or foreign file
// or one whose header does not check.
func (x *Index) load() error {
	var b [hEnd]byte
	n, err := x.f.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return files.Error("read", x.path, err)
	}
	if n < hEnd || string(b[hMagic:hMagic+8]) != magic || derived.Sum(b[:hSum]) != binary.LittleEndian.Uint64(b[hSum:]) {
		return errStale
	}
	h := header{
		slots:        binary.LittleEndian.Uint64(b[hSlots:]),
		used:         binary.LittleEndian.Uint64(b[hUsed:]),
		applied:      int64(binary.LittleEndian.Uint64(b[hApplied:])),
		anchor:       binary.LittleEndian.Uint64(b[hAnchor:]),
		synced:       int64(binary.LittleEndian.Uint64(b[hSynced:])),
		syncedAnchor: binary.LittleEndian.Uint64(b[hSyncedAnchor:]),
		boot:         binary.LittleEndian.Uint64(b[hBoot:]),
	}
	if h.slots < minSlots || h.slots&(h.slots-1) != 0 || h.slots > 1<<40 || h.used > h.slots || h.synced > h.applied || h.applied < 0 {
		return errStale
	}
	info, err := x.f.Stat()
	if err != nil {
		return files.Error("stat", x.path, err)
	}
	if info.Size() < headerSize+int64(h.slots)*slotSize {
		return errStale // cut short
	}
	x.h = h
	return nil
}

func encodeHeader(h header) []byte {
	b := make([]byte, hEnd)
	copy(b, magic)
	binary.LittleEndian.PutUint64(b[hSlots:], h.slots)
	binary.LittleEndian.PutUint64(b[hUsed:], h.used)
	binary.LittleEndian.PutUint64(b[hApplied:], uint64(h.applied))
	binary.LittleEndian.PutUint64(b[hAnchor:], h.anchor)
	binary.LittleEndian.PutUint64(b[hSynced:], uint64(h.synced))
	binary.LittleEndian.PutUint64(b[hSyncedAnchor:], h.syncedAnchor)
	binary.LittleEndian.PutUint64(b[hBoot:], h.boot)
	binary.LittleEndian.PutUint64(b[hSum:], derived.Sum(b[:hSum]))
	return b
}

// writeHeader changes the header with change and writes it, stamped with
// this boot.
func (x *Index) writeHeader(change func(*header)) error {
	h := x.h
	change(&h)
	h.boot = derived.BootSum()
	if _, err := x.f.WriteAt(encodeHeader(h), 0); err != nil {
		return files.Error("write", x.path, err)
	}
	x.h = h
	return nil
}

// Holding returns buyer's holding: what the table says, with the changes
// of the records staged since (see Stage).
func (x *Index) Holding(buyer string) (int64, error) {
	k := keyOf(buyer)
	_, s, err := x.find(k)
	if errors.Is(err, errStale) && x.canRebuild() {
		if err = x.rebuild(); err == nil {
			_, s, err = x.find(k)
		}
	}
	if err != nil {
		return 0, err
	}
	return s.holding + x.staged[k], nil
}

// Stage counts the change record r makes to its buyer's holding (see
// ticket.Record.Holding) in what Holding returns, before r is committed:
// the next request decided in the same transaction sees it. Apply writes
// it; Unstage forgets what was staged.
func (x *Index) Stage(r ticket.Record) {
	buyer, d := r.Holding()
	if d == 0 {
		return
	}
	if x.staged == nil {
		x.staged = map[key]int64{}
	}
	x.staged[keyOf(buyer)] += d
}

// Unstage forgets the changes staged: their records were not committed.
func (x *Index) Unstage() { clear(x.staged) }

// Apply writes the changes of records, committed after the version the
// table reflects and in order, and anchors the table at the last one. A
// record that does not follow (a gap) leaves the table marked stale, for
// the next Sync to rebuild.
func (x *Index) Apply(records []ticket.Record) error {
	x.Unstage()
	return x.apply(records, x.h.applied)
}

func (x *Index) apply(records []ticket.Record, from int64) error {
	if len(records) == 0 {
		return nil
	}
	seq := from
	for i := range records {
		r := &records[i]
		if r.Seq != seq+1 {
			return x.markStale()
		}
		seq = r.Seq
		buyer, d := r.Holding()
		if d == 0 {
			continue
		}
		if err := x.add(keyOf(buyer), d, r.Seq); err != nil {
			if errors.Is(err, errStale) {
				return x.markStale()
			}
			return err
		}
	}
	seam.Crash(seam.HoldersApplied)
	last := &records[len(records)-1]
	checkpoint := !x.noSync && last.Seq-x.h.synced >= checkpointEvery
	if checkpoint {
		if err := x.f.Sync(); err != nil {
			return files.Error("sync", x.path, err)
		}
	}
	return x.writeHeader(func(h *header) {
		h.applied, h.anchor = last.Seq, derived.Anchor(last)
		if checkpoint {
			h.synced, h.syncedAnchor = h.applied, h.anchor
		}
	})
}

// markStale makes the next Sync rebuild the table.
func (x *Index) markStale() error {
	_, err := x.f.WriteAt(make([]byte, hEnd), 0)
	if err != nil {
		return files.Error("write", x.path, err)
	}
	return nil
}

// slot is one buyer's entry.
type slot struct {
	key     key
	holding int64
	seq     int64
}

func (s slot) empty() bool { return s.key == key{} }

func encodeSlot(b []byte, s slot) {
	copy(b[sKey:], s.key[:])
	binary.LittleEndian.PutUint64(b[sHolding:], uint64(s.holding))
	binary.LittleEndian.PutUint64(b[sSeq:], uint64(s.seq))
	binary.LittleEndian.PutUint64(b[sSum:], derived.Sum(b[:sSum]))
	clear(b[sEnd:slotSize])
}

// decodeSlot reads a slot; errStale when it does not check.
func decodeSlot(b []byte) (slot, error) {
	var s slot
	copy(s.key[:], b[sKey:])
	if s.empty() {
		for _, c := range b[:slotSize] {
			if c != 0 {
				return s, errStale
			}
		}
		return s, nil
	}
	if derived.Sum(b[:sSum]) != binary.LittleEndian.Uint64(b[sSum:]) {
		return s, errStale
	}
	s.holding = int64(binary.LittleEndian.Uint64(b[sHolding:]))
	s.seq = int64(binary.LittleEndian.Uint64(b[sSeq:]))
	if s.holding < 0 || s.seq < 1 {
		return s, errStale
	}
	return s, nil
}

// find returns the index and content of k's slot, or of the empty slot
// where it would go.
func (x *Index) find(k key) (uint64, slot, error) {
	mask := x.h.slots - 1
	i := binary.LittleEndian.Uint64(k[:8]) & mask
	var buf [probeRead * slotSize]byte
	for probed := uint64(0); probed < x.h.slots; {
		n := min(probeRead, x.h.slots-i) // stop at the end of the table
		b := buf[:n*slotSize]
		if _, err := x.f.ReadAt(b, headerSize+int64(i)*slotSize); err != nil {
			if errors.Is(err, io.EOF) {
				return 0, slot{}, errStale
			}
			return 0, slot{}, files.Error("read", x.path, err)
		}
		for j := range n {
			s, err := decodeSlot(b[j*slotSize:])
			if err != nil {
				return 0, slot{}, err
			}
			if s.empty() || s.key == k {
				return i + j, s, nil
			}
		}
		probed += n
		i = (i + n) & mask
	}
	return 0, slot{}, errStale // full: the header's count is wrong
}

// add changes k's holding by d for record seq, unless the slot has it.
func (x *Index) add(k key, d, seq int64) error {
	i, s, err := x.find(k)
	if err != nil {
		return err
	}
	if s.empty() {
		if (x.h.used+1)*2 > x.h.slots {
			if err := x.grow(); err != nil {
				return err
			}
			return x.add(k, d, seq)
		}
		s.key = k
		x.h.used++ // written with the header at the end of apply
	}
	if s.seq >= seq {
		return nil // applied before this process was killed
	}
	s.holding += d
	s.seq = seq
	if s.holding < 0 {
		return errStale // more given back than the table knows of
	}
	var b [slotSize]byte
	encodeSlot(b[:], s)
	if _, err := x.f.WriteAt(b[:], headerSize+int64(i)*slotSize); err != nil {
		return files.Error("write", x.path, err)
	}
	return nil
}

// grow doubles the table: every slot is placed again in a new file,
// which replaces this one.
func (x *Index) grow() error {
	old := make([]byte, x.h.slots*slotSize)
	if _, err := x.f.ReadAt(old, headerSize); err != nil {
		return files.Error("read", x.path, err)
	}
	var slots []slot
	for o := 0; o < len(old); o += slotSize {
		s, err := decodeSlot(old[o:])
		if err != nil {
			return err
		}
		if !s.empty() {
			slots = append(slots, s)
		}
	}
	h := x.h
	h.slots *= 2
	return x.replace(h, slots)
}

// rebuild builds the table from the whole journal, up to x.version.
func (x *Index) rebuild() error {
	x.Rebuilds++
	byKey := map[key]*slot{}
	var keys []key
	for r, err := range x.journal.All() {
		if err != nil {
			return err
		}
		if r.Seq > x.version {
			break
		}
		buyer, d := r.Holding()
		if d == 0 {
			continue
		}
		k := keyOf(buyer)
		s := byKey[k]
		if s == nil {
			s = &slot{key: k}
			byKey[k] = s
			keys = append(keys, k)
		}
		s.holding += d
		s.seq = r.Seq
	}
	slots := make([]slot, 0, len(keys))
	for _, k := range keys {
		s := byKey[k]
		if s.holding < 0 {
			s.holding = 0 // the journal gives back more than it took: verify says so
		}
		slots = append(slots, *s)
	}
	h := header{slots: minSlots, applied: x.version, anchor: derived.Anchor(x.last)}
	for uint64(len(slots))*2 > h.slots {
		h.slots *= 2
	}
	return x.replace(h, slots)
}

// replace writes a table of h's size holding slots to a new file, synced,
// and renames it over x's: a process killed meanwhile leaves the old
// table, or the new one, whole.
func (x *Index) replace(h header, slots []slot) error {
	h.used = uint64(len(slots))
	h.boot = derived.BootSum()
	if x.noSync {
		h.synced, h.syncedAnchor = 0, 0 // nothing synced: rebuilt after a power cut
	} else {
		h.synced, h.syncedAnchor = h.applied, h.anchor
	}
	b := make([]byte, headerSize+h.slots*slotSize)
	copy(b, encodeHeader(h))
	mask := h.slots - 1
	for _, s := range slots {
		i := binary.LittleEndian.Uint64(s.key[:8]) & mask
		for !isEmpty(b[headerSize+i*slotSize:]) {
			i = (i + 1) & mask
		}
		encodeSlot(b[headerSize+i*slotSize:], s)
	}
	f, err := derived.Replace(x.path, x.like, b, x.noSync)
	if err != nil {
		return err
	}
	x.f.Close()
	x.f, x.h = f, h
	return nil
}

func isEmpty(b []byte) bool { return [16]byte(b[:16]) == key{} }

// Most returns the largest holding in the table (0 for none): what a new
// limit may not go below. It reads the whole table.
func (x *Index) Most() (int64, error) {
	slots, err := x.all()
	if err != nil {
		return 0, err
	}
	var most int64
	for _, s := range slots {
		if _, ok := x.staged[s.key]; !ok {
			most = max(most, s.holding)
		}
	}
	for k, d := range x.staged {
		_, s, err := x.find(k)
		if err != nil {
			return 0, err
		}
		most = max(most, s.holding+d)
	}
	return most, nil
}

// Buyers returns the number of buyers with a holding.
func (x *Index) Buyers() (int, error) {
	slots, err := x.all()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range slots {
		if s.holding > 0 {
			n++
		}
	}
	return n, nil
}

// canRebuild reports whether a table found damaged may be rebuilt now: in
// a writer (Sync gave it the journal), once.
func (x *Index) canRebuild() bool { return x.journal != nil && x.Rebuilds == 0 }

// all returns every slot in use, reading the whole table; a writer
// rebuilds a table that does not check, once.
func (x *Index) all() ([]slot, error) {
	slots, err := x.readAll()
	if errors.Is(err, errStale) && x.canRebuild() {
		if err = x.rebuild(); err == nil {
			slots, err = x.readAll()
		}
	}
	return slots, err
}

func (x *Index) readAll() ([]slot, error) {
	b := make([]byte, x.h.slots*slotSize)
	if _, err := x.f.ReadAt(b, headerSize); errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: cut short: %w", x.path, errStale)
	} else if err != nil {
		return nil, files.Error("read", x.path, err)
	}
	var slots []slot
	for o := 0; o < len(b); o += slotSize {
		s, err := decodeSlot(b[o:])
		if err != nil {
			return nil, fmt.Errorf("%s: a slot does not check: %w", x.path, err)
		}
		if !s.empty() {
			slots = append(slots, s)
		}
	}
	return slots, nil
}

func keyOf(buyer string) key {
	h := fnv.New128a()
	io.WriteString(h, buyer)
	var k key
	h.Sum(k[:0])
	if k == (key{}) {
		k[0] = 1 // the empty slot's key
	}
	return k
}

// sameBoot reports whether the table was last written in this boot of the
// machine, known.
func sameBoot(h header) bool {
	b := derived.BootSum()
	return b != 0 && h.boot == b
}
