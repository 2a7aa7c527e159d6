package powercut

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
)

// DataLoss says what a power cut does to a file's data changed (written,
// truncated, allocated) since the file's last fsync or fdatasync.
type DataLoss int

const (
	// DataLost: all of it is lost; the file has its content as of its last
	// fsync or fdatasync (empty if it never had one).
	DataLost DataLoss = iota
	// DataPrefix: a prefix of the changes, in the order they were made, is
	// kept, its length drawn at random (none, some or all of them).
	DataPrefix
	// DataBlocks: the size is either the durable or the current one, and
	// each 4 KiB block that differs between the durable and the current
	// content comes from either, drawn at random; blocks past the durable
	// size that keep their durable version read as zeros.
	DataBlocks
	// DataKept: all of it is kept, as if only the processes had died.
	DataKept
)

// MetaLoss says what a power cut does to the metadata operations (create,
// mkdir, symlink, link, unlink, rmdir, rename, chmod, chown) not made
// durable by an fsync of their directory (chmod, chown: of their file).
type MetaLoss int

const (
	// MetaLost: all of them are lost.
	MetaLost MetaLoss = iota
	// MetaEach: each is kept or lost on its own, drawn at random.
	MetaEach
	// MetaPrefix: a prefix of them, in the order the file system applied
	// them across all directories, is kept, its length drawn at random.
	MetaPrefix
	// MetaKept: all of them are kept, as if only the processes had died.
	MetaKept
)

// Variant is what a power cut keeps of what was not made durable: of
// file data and of metadata operations, chosen independently.
type Variant struct {
	Data DataLoss
	Meta MetaLoss
}

// The variants the package doc describes, by the file systems they stand for.
var (
	// LoseAll keeps exactly what was fsynced: the minimum POSIX promises,
	// and a state every real file system can be left in.
	LoseAll = Variant{DataLost, MetaLost}
	// KeepAll keeps everything: no power cut, the processes die alone. A
	// control: a test that fails under KeepAll fails without power cuts.
	KeepAll = Variant{DataKept, MetaKept}
	// Journaled: ext4 data=ordered with its journal, xfs and btrfs, as
	// far as this model goes: metadata committed in order, appended data
	// kept in order up to some point.
	Journaled = Variant{DataPrefix, MetaPrefix}
	// Unjournaled: ext4 without its journal (or ext2): metadata blocks
	// and data blocks reach the disk in any order.
	Unjournaled = Variant{DataBlocks, MetaEach}
)

func (d DataLoss) String() string {
	switch d {
	case DataLost:
		return "lost"
	case DataPrefix:
		return "prefix"
	case DataBlocks:
		return "blocks"
	case DataKept:
		return "kept"
	}
	return fmt.Sprintf("DataLoss(%d)", int(d))
}

func (m MetaLoss) String() string {
	switch m {
	case MetaLost:
		return "lost"
	case MetaEach:
		return "each"
	case MetaPrefix:
		return "prefix"
	case MetaKept:
		return "kept"
	}
	return fmt.Sprintf("MetaLoss(%d)", int(m))
}

// String says what the variant does, as "unsynced data: prefix, unsynced
// metadata: lost".
func (v Variant) String() string {
	return "unsynced data: " + v.Data.String() + ", unsynced metadata: " + v.Meta.String()
}

// recovery is what a power cut left: the file system a new mount
// presents, and what of the unsynced state it kept and lost.
type recovery struct {
	fs         *fsys
	lost, kept []string
}

// candidate is a metadata operation with a part not yet durable.
type candidate struct {
	op      *metaOp
	changes []entryChange // the changes to directories not fsynced since
	attr    bool          // its chmod or chown is not durable yet
}

// recover computes, with the choices of variant v drawn from rng, what a
// power cut leaves of f: every node's durable state, plus what v keeps of
// the rest. The result is fully durable (nothing pending) and shares no
// memory with f. Variants that draw nothing (LoseAll, KeepAll) need no rng.
func (f *fsys) recover(v Variant, rng *rand.Rand) recovery {
	var r recovery
	dkids := map[uint64]map[string]uint64{}
	dattr := map[uint64]attrs{}
	for ino, n := range f.nodes {
		dattr[ino] = n.dattr
		if n.dkids != nil {
			dkids[ino] = maps.Clone(n.dkids)
		}
	}

	// Metadata operations not yet durable, in the order they were made.
	var cands []candidate
	for i := range f.meta {
		op := &f.meta[i]
		c := candidate{op: op, attr: op.attrIno != 0 && f.nodes[op.attrIno].attrSeq < op.seq}
		for _, ch := range op.changes {
			if f.nodes[ch.dir].dirSeq < op.seq {
				c.changes = append(c.changes, ch)
			}
		}
		if len(c.changes) > 0 || c.attr {
			cands = append(cands, c)
		}
	}
	prefix := len(cands)
	switch v.Meta {
	case MetaLost:
		prefix = 0
	case MetaPrefix:
		prefix = rng.IntN(len(cands) + 1)
	}
	for i, c := range cands {
		keep := i < prefix
		if v.Meta == MetaEach {
			keep = rng.IntN(2) == 1
		}
		if !keep {
			r.lost = append(r.lost, c.op.desc)
			continue
		}
		r.kept = append(r.kept, c.op.desc)
		for _, ch := range c.changes {
			if ch.ino == 0 {
				delete(dkids[ch.dir], ch.name)
			} else {
				dkids[ch.dir][ch.name] = ch.ino
			}
		}
		if c.attr {
			a := dattr[c.op.attrIno]
			if c.op.setMode {
				a.mode = c.op.mode
			}
			if c.op.setOwner {
				a.uid, a.gid = c.op.uid, c.op.gid
			}
			dattr[c.op.attrIno] = a
		}
	}

	// The tree the durable entries make, from the root; a directory named
	// twice (a move between directories made durable in both) keeps the
	// first name found, in sorted order, as fsck would keep one.
	g := &fsys{nodes: map[uint64]*node{}, nextIno: f.nextIno, capacity: f.capacity}
	paths := map[uint64]string{rootIno: ""}
	clone := func(ino uint64) *node {
		old := f.nodes[ino]
		n := &node{ino: ino, attr: dattr[ino], dattr: dattr[ino], target: old.target}
		if n.attr.isDir() {
			n.kids, n.dkids = map[string]uint64{}, map[string]uint64{}
			n.nlink = 1
		}
		g.nodes[ino] = n
		return n
	}
	root := clone(rootIno)
	root.nlink = 2
	for queue := []*node{root}; len(queue) > 0; queue = queue[1:] {
		d := queue[0]
		for _, name := range slices.Sorted(maps.Keys(dkids[d.ino])) {
			ino := dkids[d.ino][name]
			p := joinPath(paths[d.ino], name)
			n := g.nodes[ino]
			if n == nil {
				n = clone(ino)
				paths[ino] = p
				if n.attr.isDir() {
					queue = append(queue, n)
				}
			} else if n.attr.isDir() {
				r.lost = append(r.lost, "second name "+p+" of directory "+paths[ino])
				continue
			}
			d.kids[name] = ino
			n.nlink++
			n.links = append(n.links, link{d.ino, name})
			if n.attr.isDir() {
				d.nlink++
			}
		}
	}

	// File data.
	for _, ino := range slices.Sorted(maps.Keys(g.nodes)) {
		n, old := g.nodes[ino], f.nodes[ino]
		if n.attr.isDir() {
			n.dkids = maps.Clone(n.kids)
			continue
		}
		if !n.attr.isRegular() {
			continue
		}
		n.data = r.recoverData(paths[ino], old, v.Data, rng)
		n.ddata = bytes.Clone(n.data)
		g.used += int64(len(n.data))
	}
	r.fs = g
	return r
}

// recoverData returns what variant d leaves of file n's data, and reports it.
func (r *recovery) recoverData(p string, n *node, d DataLoss, rng *rand.Rand) []byte {
	m := len(n.pending)
	if m == 0 {
		return bytes.Clone(n.ddata)
	}
	cur := applyAll(n.ddata, n.pending)
	sizes := fmt.Sprintf("(durable size %d, current %d)", len(n.ddata), len(cur))
	switch d {
	case DataKept:
		r.kept = append(r.kept, fmt.Sprintf("%s: all %d unsynced changes %s", p, m, sizes))
		return cur
	case DataPrefix:
		k := rng.IntN(m + 1)
		out := applyAll(n.ddata, n.pending[:k])
		msg := fmt.Sprintf("%s: the first %d of %d unsynced changes, size %d %s", p, k, m, len(out), sizes)
		if k > 0 {
			r.kept = append(r.kept, msg)
		}
		if k < m {
			r.lost = append(r.lost, fmt.Sprintf("%s: the last %d of %d unsynced changes (%s), size %d %s",
				p, m-k, m, describe(n.pending[k:]), len(out), sizes))
		}
		return out
	case DataBlocks:
		out, kept, differ := mixBlocks(n.ddata, cur, rng)
		msg := fmt.Sprintf("%s: %d of %d changed 4 KiB blocks unsynced, size %d %s", p, differ-kept, differ, len(out), sizes)
		if kept > 0 {
			r.kept = append(r.kept, fmt.Sprintf("%s: %d of %d changed 4 KiB blocks, size %d %s", p, kept, differ, len(out), sizes))
		}
		if kept < differ || len(out) != len(cur) {
			r.lost = append(r.lost, msg)
		}
		return out
	}
	r.lost = append(r.lost, fmt.Sprintf("%s: %d unsynced changes (%s) %s", p, m, describe(n.pending), sizes))
	return bytes.Clone(n.ddata)
}

// mixBlocks returns a content of either old's or cur's size whose 4 KiB
// blocks each come from old or cur (zeros past old's end); it also says
// how many of the blocks that differ came from cur.
func mixBlocks(old, cur []byte, rng *rand.Rand) (out []byte, kept, differ int) {
	size := len(cur)
	if len(old) != len(cur) && rng.IntN(2) == 0 {
		size = len(old)
	}
	out = make([]byte, size)
	block := func(b []byte, off, end int) []byte {
		x := make([]byte, end-off)
		if off < len(b) {
			copy(x, b[off:min(end, len(b))])
		}
		return x
	}
	for off := 0; off < size; off += blockSize {
		end := min(off+blockSize, size)
		o, c := block(old, off, end), block(cur, off, end)
		if bytes.Equal(o, c) {
			copy(out[off:], c)
			continue
		}
		differ++
		if rng.IntN(2) == 1 {
			kept++
			copy(out[off:], c)
		} else {
			copy(out[off:], o)
		}
	}
	return out, kept, differ
}

func describe(ops []dataOp) string {
	const most = 4
	var s []string
	for i, o := range ops {
		if i == most {
			s = append(s, fmt.Sprintf("and %d more", len(ops)-most))
			break
		}
		s = append(s, o.String())
	}
	return strings.Join(s, ", ")
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// random reports whether the variant draws anything at random.
func (v Variant) random() bool {
	return v.Data == DataPrefix || v.Data == DataBlocks || v.Meta == MetaEach || v.Meta == MetaPrefix
}
