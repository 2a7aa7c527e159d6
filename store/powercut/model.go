package powercut

import (
	"bytes"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The in-memory file system: one tree of nodes, each holding its current
// state (what processes see) and its durable state (what a power cut
// leaves). Nothing here knows about FUSE; fsys's methods take and return
// the kernel's vocabulary (inode numbers, names, errno values) and are
// called with fsys.mu held.

const (
	rootIno   = 1
	blockSize = 4096
	maxName   = 255
)

// attrs are an inode's attributes. Only mode, uid and gid have a durable
// history of their own; the times follow them (see the package doc).
type attrs struct {
	mode                uint32 // permission bits and the S_IFMT type
	uid, gid            uint32
	atime, mtime, ctime time.Time
}

func (a attrs) isDir() bool     { return a.mode&syscall.S_IFMT == syscall.S_IFDIR }
func (a attrs) isRegular() bool { return a.mode&syscall.S_IFMT == syscall.S_IFREG }
func (a attrs) isSymlink() bool { return a.mode&syscall.S_IFMT == syscall.S_IFLNK }

// dataKind is what a change to a file's data does.
type dataKind uint8

const (
	dataWrite    dataKind = iota // write bytes at off, extending the file
	dataTruncate                 // set the size to n
	dataExtend                   // fallocate mode 0: size at least off+n
	dataZero                     // punch a hole or zero a range: zeros in [off, off+n), extending unless keep
)

// dataOp is one change to a file's data that is not durable yet: the list
// of them since the last fsync, applied to the durable content, gives the
// current content.
type dataOp struct {
	kind dataKind
	off  int64
	n    int64 // truncate: the new size; extend, zero: the length
	data []byte
	keep bool // zero: FALLOC_FL_KEEP_SIZE
}

func (o dataOp) String() string {
	switch o.kind {
	case dataWrite:
		return fmt.Sprintf("write [%d,+%d)", o.off, len(o.data))
	case dataTruncate:
		return fmt.Sprintf("truncate %d", o.n)
	case dataExtend:
		return fmt.Sprintf("fallocate [%d,+%d)", o.off, o.n)
	default:
		return fmt.Sprintf("zero [%d,+%d)", o.off, o.n)
	}
}

// apply returns b changed by o; it may reuse b's memory.
func (o dataOp) apply(b []byte) []byte {
	switch o.kind {
	case dataWrite:
		b = grow(b, o.off+int64(len(o.data)))
		copy(b[o.off:], o.data)
	case dataTruncate:
		b = grow(b, o.n)[:o.n]
	case dataExtend:
		b = grow(b, o.off+o.n)
	case dataZero:
		end := o.off + o.n
		if !o.keep {
			b = grow(b, end)
		}
		if end > int64(len(b)) {
			end = int64(len(b))
		}
		if o.off < end {
			clear(b[o.off:end])
		}
	}
	return b
}

// grow returns b extended with zeros to at least n bytes.
func grow(b []byte, n int64) []byte {
	if n <= int64(len(b)) {
		return b
	}
	return append(b, make([]byte, n-int64(len(b)))...)
}

// applyAll returns a new slice: base changed by ops in order.
func applyAll(base []byte, ops []dataOp) []byte {
	b := bytes.Clone(base)
	if b == nil {
		b = []byte{}
	}
	for _, o := range ops {
		b = o.apply(b)
	}
	return b
}

// link is one name of a node: an entry of a directory.
type link struct {
	dir  uint64
	name string
}

// node is an inode, in both layers.
type node struct {
	ino    uint64
	attr   attrs             // current
	data   []byte            // regular file: current content
	kids   map[string]uint64 // directory: current entries
	target string            // symbolic link
	nlink  uint32            // current names (directories: 2 + subdirectories)
	links  []link            // current names, oldest first: the first names the node in the log
	opens  int               // open handles
	dead   bool              // no name and no handle left: gone from the current state

	dattr   attrs             // durable attributes
	attrSeq uint64            // the operation (seq) as of which dattr is durable
	ddata   []byte            // regular file: durable content
	pending []dataOp          // regular file: changes since the last fsync or fdatasync
	dkids   map[string]uint64 // directory: durable entries
	dirSeq  uint64            // directory: the operation (seq) of its last fsync
}

// entryChange is what one metadata operation does to one directory: name
// now refers to ino, or (ino 0) is removed.
type entryChange struct {
	dir  uint64
	name string
	ino  uint64
}

// metaOp is a metadata operation, kept in the order the file system
// applied them, so that a power cut can keep or lose each of those not yet
// made durable by an fsync of their directory (or, for chmod and chown, of
// their file).
type metaOp struct {
	seq      uint64
	desc     string // "rename a -> b", for reports
	changes  []entryChange
	attrIno  uint64 // chmod, chown: the node whose attributes changed
	setMode  bool   // chmod: to mode
	mode     uint32
	setOwner bool // chown: to uid, gid
	uid, gid uint32
}

// fsys is the file system's state.
type fsys struct {
	nodes    map[uint64]*node
	nextIno  uint64
	seq      uint64 // numbers every state-changing or syncing operation
	meta     []metaOp
	used     int64 // bytes of current data of live nodes
	capacity int64
}

func newFsys(capacity int64) *fsys {
	now := time.Now()
	root := &node{
		ino:   rootIno,
		attr:  attrs{mode: syscall.S_IFDIR | 0o755, atime: now, mtime: now, ctime: now},
		kids:  map[string]uint64{},
		dkids: map[string]uint64{},
		nlink: 2,
	}
	root.dattr = root.attr
	return &fsys{nodes: map[uint64]*node{rootIno: root}, nextIno: rootIno + 1, capacity: capacity}
}

// get returns the live node ino.
func (f *fsys) get(ino uint64) (*node, syscall.Errno) {
	n := f.nodes[ino]
	if n == nil || n.dead {
		return nil, syscall.ENOENT
	}
	return n, 0
}

func (f *fsys) dir(ino uint64) (*node, syscall.Errno) {
	d, err := f.get(ino)
	if err != 0 {
		return nil, err
	}
	if !d.attr.isDir() {
		return nil, syscall.ENOTDIR
	}
	return d, 0
}

// path names node ino relative to the mount's root ("" for the root), by
// its oldest current name; a node with no name left is "(deleted)".
func (f *fsys) path(ino uint64) string {
	var parts []string
	for i := 0; ino != rootIno && i < 4096; i++ {
		n := f.nodes[ino]
		if n == nil || len(n.links) == 0 {
			parts = append(parts, "(deleted)")
			break
		}
		parts = append(parts, n.links[0].name)
		ino = n.links[0].dir
	}
	slices.Reverse(parts)
	return strings.Join(parts, "/")
}

func (f *fsys) childPath(dir uint64, name string) string {
	if p := f.path(dir); p != "" {
		return p + "/" + name
	}
	return name
}

func (f *fsys) lookup(dir uint64, name string) (*node, syscall.Errno) {
	d, err := f.dir(dir)
	if err != 0 {
		return nil, err
	}
	ino, ok := d.kids[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	return f.nodes[ino], 0
}

// checkNew checks that name can be created in dir.
func (f *fsys) checkNew(dir uint64, name string) (*node, syscall.Errno) {
	d, err := f.dir(dir)
	if err != 0 {
		return nil, err
	}
	if len(name) > maxName {
		return nil, syscall.ENAMETOOLONG
	}
	if _, ok := d.kids[name]; ok {
		return nil, syscall.EEXIST
	}
	return d, 0
}

// newNode makes a node with attributes a, named name in d.
func (f *fsys) newNode(d *node, name string, a attrs, desc string) *node {
	f.seq++
	now := time.Now()
	a.atime, a.mtime, a.ctime = now, now, now
	n := &node{ino: f.nextIno, attr: a, dattr: a}
	f.nextIno++
	switch {
	case a.isDir():
		n.kids, n.dkids = map[string]uint64{}, map[string]uint64{}
		n.nlink = 1 // its own "."; the name below adds one
		d.nlink++
	case a.isRegular():
		n.data = []byte{}
	}
	f.nodes[n.ino] = n
	f.addName(d, name, n)
	f.meta = append(f.meta, metaOp{seq: f.seq, desc: desc + " " + f.childPath(d.ino, name), changes: []entryChange{{d.ino, name, n.ino}}})
	return n
}

func (f *fsys) addName(d *node, name string, n *node) {
	d.kids[name] = n.ino
	n.nlink++
	n.links = append(n.links, link{d.ino, name})
	d.attr.mtime, d.attr.ctime = time.Now(), time.Now()
}

// dropName removes name from d; the node it named loses a link.
func (f *fsys) dropName(d *node, name string) {
	n := f.nodes[d.kids[name]]
	delete(d.kids, name)
	n.links = slices.DeleteFunc(n.links, func(l link) bool { return l == link{d.ino, name} })
	n.nlink--
	if n.attr.isDir() {
		d.nlink--
		n.nlink = 0 // its "." goes too
	}
	n.attr.ctime = time.Now()
	d.attr.mtime, d.attr.ctime = time.Now(), time.Now()
	f.maybeDead(n)
}

func (f *fsys) maybeDead(n *node) {
	if n.nlink == 0 && n.opens == 0 && !n.dead {
		n.dead = true
		f.used -= int64(len(n.data))
	}
}

func (f *fsys) create(dir uint64, name string, mode, uid, gid uint32) (*node, syscall.Errno) {
	d, err := f.checkNew(dir, name)
	if err != 0 {
		return nil, err
	}
	return f.newNode(d, name, attrs{mode: syscall.S_IFREG | mode&0o7777, uid: uid, gid: gid}, "create"), 0
}

func (f *fsys) mkdir(dir uint64, name string, mode, uid, gid uint32) (*node, syscall.Errno) {
	d, err := f.checkNew(dir, name)
	if err != 0 {
		return nil, err
	}
	n := f.newNode(d, name, attrs{mode: syscall.S_IFDIR | mode&0o7777, uid: uid, gid: gid}, "mkdir")
	n.dirSeq = f.seq // its (empty) entries are what it durably has
	return n, 0
}

func (f *fsys) symlink(dir uint64, name, target string, uid, gid uint32) (*node, syscall.Errno) {
	d, err := f.checkNew(dir, name)
	if err != 0 {
		return nil, err
	}
	n := f.newNode(d, name, attrs{mode: syscall.S_IFLNK | 0o777, uid: uid, gid: gid}, "symlink")
	n.target = target
	return n, 0
}

func (f *fsys) link(ino, dir uint64, name string) (*node, syscall.Errno) {
	n, err := f.get(ino)
	if err != 0 {
		return nil, err
	}
	if n.attr.isDir() {
		return nil, syscall.EPERM
	}
	if n.nlink == 0 {
		return nil, syscall.ENOENT // an unnamed open file: linkat(AT_EMPTY_PATH) of O_TMPFILE only
	}
	d, err := f.checkNew(dir, name)
	if err != 0 {
		return nil, err
	}
	f.seq++
	desc := "link " + f.path(ino) + " -> " + f.childPath(dir, name)
	f.addName(d, name, n)
	n.attr.ctime = time.Now()
	f.meta = append(f.meta, metaOp{seq: f.seq, desc: desc, changes: []entryChange{{dir, name, ino}}})
	return n, 0
}

func (f *fsys) unlink(dir uint64, name string, rmdir bool) syscall.Errno {
	n, err := f.lookup(dir, name)
	if err != 0 {
		return err
	}
	switch {
	case rmdir && !n.attr.isDir():
		return syscall.ENOTDIR
	case !rmdir && n.attr.isDir():
		return syscall.EISDIR
	case rmdir && len(n.kids) > 0:
		return syscall.ENOTEMPTY
	}
	f.seq++
	op := "unlink "
	if rmdir {
		op = "rmdir "
	}
	desc := op + f.childPath(dir, name)
	f.dropName(f.nodes[dir], name)
	f.meta = append(f.meta, metaOp{seq: f.seq, desc: desc, changes: []entryChange{{dir, name, 0}}})
	return 0
}

const (
	renameNoReplace = 1 // RENAME_NOREPLACE
	renameExchange  = 2 // RENAME_EXCHANGE
)

func (f *fsys) rename(dir1 uint64, name1 string, dir2 uint64, name2 string, flags uint32) syscall.Errno {
	if flags&^(renameNoReplace|renameExchange) != 0 || flags == renameNoReplace|renameExchange {
		return syscall.EINVAL
	}
	src, err := f.lookup(dir1, name1)
	if err != 0 {
		return err
	}
	d2, err := f.dir(dir2)
	if err != 0 {
		return err
	}
	if len(name2) > maxName {
		return syscall.ENAMETOOLONG
	}
	d1 := f.nodes[dir1]
	dst := f.nodes[d2.kids[name2]]
	switch {
	case dst == nil && flags&renameExchange != 0:
		return syscall.ENOENT
	case dst != nil && flags&renameNoReplace != 0:
		return syscall.EEXIST
	case dst == src:
		return 0 // two names of one file: nothing to do (POSIX)
	case dst != nil && flags&renameExchange == 0 && src.attr.isDir() && !dst.attr.isDir():
		return syscall.ENOTDIR
	case dst != nil && flags&renameExchange == 0 && !src.attr.isDir() && dst.attr.isDir():
		return syscall.EISDIR
	case dst != nil && flags&renameExchange == 0 && dst.attr.isDir() && len(dst.kids) > 0:
		return syscall.ENOTEMPTY
	}
	if src.attr.isDir() && f.isAncestor(src.ino, dir2) || dst != nil && flags&renameExchange != 0 && dst.attr.isDir() && f.isAncestor(dst.ino, dir1) {
		return syscall.EINVAL
	}
	f.seq++
	from, to := f.childPath(dir1, name1), f.childPath(dir2, name2)
	op := metaOp{seq: f.seq, desc: "rename " + from + " -> " + to}
	if flags&renameExchange != 0 {
		op.desc = "exchange " + from + " <-> " + to
		f.detach(d1, name1, src)
		f.detach(d2, name2, dst)
		f.attach(d2, name2, src)
		f.attach(d1, name1, dst)
		op.changes = []entryChange{{dir2, name2, src.ino}, {dir1, name1, dst.ino}}
	} else {
		if dst != nil {
			f.dropName(d2, name2)
		}
		f.detach(d1, name1, src)
		f.attach(d2, name2, src)
		op.changes = []entryChange{{dir2, name2, src.ino}, {dir1, name1, 0}}
	}
	f.meta = append(f.meta, op)
	return 0
}

// detach and attach move a name without changing the node's link count
// (but a directory's parent's).
func (f *fsys) detach(d *node, name string, n *node) {
	delete(d.kids, name)
	n.links = slices.DeleteFunc(n.links, func(l link) bool { return l == link{d.ino, name} })
	if n.attr.isDir() {
		d.nlink--
	}
	d.attr.mtime, d.attr.ctime = time.Now(), time.Now()
}

func (f *fsys) attach(d *node, name string, n *node) {
	d.kids[name] = n.ino
	n.links = append(n.links, link{d.ino, name})
	if n.attr.isDir() {
		d.nlink++
	}
	n.attr.ctime = time.Now()
	d.attr.mtime, d.attr.ctime = time.Now(), time.Now()
}

// isAncestor reports whether directory a is dir or above it.
func (f *fsys) isAncestor(a, dir uint64) bool {
	for i := 0; i < 4096; i++ {
		if dir == a {
			return true
		}
		n := f.nodes[dir]
		if dir == rootIno || n == nil || len(n.links) == 0 {
			return false
		}
		dir = n.links[0].dir
	}
	return false
}

// setAttrs changes mode, owner (either may be nil) of n: a metadata
// operation.
func (f *fsys) setAttrs(n *node, mode, uid, gid *uint32) {
	f.seq++
	var what []string
	if mode != nil {
		n.attr.mode = n.attr.mode&syscall.S_IFMT | *mode&0o7777
		what = append(what, fmt.Sprintf("chmod %o", *mode&0o7777))
	}
	if uid != nil {
		n.attr.uid = *uid
	}
	if gid != nil {
		n.attr.gid = *gid
	}
	if uid != nil || gid != nil {
		what = append(what, fmt.Sprintf("chown %d:%d", n.attr.uid, n.attr.gid))
	}
	n.attr.ctime = time.Now()
	f.meta = append(f.meta, metaOp{
		seq: f.seq, desc: strings.Join(what, ", ") + " " + f.path(n.ino), attrIno: n.ino,
		setMode: mode != nil, mode: n.attr.mode, setOwner: uid != nil || gid != nil, uid: n.attr.uid, gid: n.attr.gid,
	})
}

// changeData applies a change to a regular file's current data and keeps
// it pending until the next fsync or fdatasync.
func (f *fsys) changeData(n *node, o dataOp) syscall.Errno {
	if !n.attr.isRegular() {
		return syscall.EINVAL
	}
	var end int64
	switch o.kind {
	case dataWrite:
		end = o.off + int64(len(o.data))
	case dataTruncate:
		end = o.n
	default:
		end = o.off + o.n
		if o.keep {
			end = 0
		}
	}
	if o.off < 0 || o.n < 0 || end < 0 {
		return syscall.EINVAL
	}
	if grow := end - int64(len(n.data)); grow > 0 && f.used+grow > f.capacity {
		return syscall.ENOSPC
	}
	f.seq++
	if o.data != nil {
		o.data = bytes.Clone(o.data)
	}
	before := len(n.data)
	n.data = o.apply(n.data)
	f.used += int64(len(n.data) - before)
	n.pending = append(n.pending, o)
	n.attr.mtime, n.attr.ctime = time.Now(), time.Now()
	return 0
}

// fsync makes n's data durable, and with all (fsync, not fdatasync) its
// attributes too. For a directory it makes its entries durable.
func (f *fsys) fsync(n *node, all bool) {
	f.seq++
	if all || n.attr.isDir() {
		n.dattr, n.attrSeq = n.attr, f.seq
	}
	switch {
	case n.attr.isRegular():
		n.ddata = bytes.Clone(n.data)
		n.pending = nil
	case n.attr.isDir():
		for name, ino := range n.kids {
			if n.dkids[name] != ino {
				// A new durable name: the inode it names is written with it.
				c := f.nodes[ino]
				c.dattr, c.attrSeq = c.attr, f.seq
			}
		}
		n.dkids = maps.Clone(n.kids)
		n.dirSeq = f.seq
	}
}

// syncAll makes the whole current state durable, as if every file and
// directory had been fsynced.
func (f *fsys) syncAll() {
	f.seq++
	for _, n := range f.nodes {
		n.dattr, n.attrSeq = n.attr, f.seq
		n.ddata = bytes.Clone(n.data)
		n.pending = nil
		if n.attr.isDir() {
			n.dkids = maps.Clone(n.kids)
			n.dirSeq = f.seq
		}
	}
	f.meta = nil
}

// read returns up to size bytes of n's current data at off.
func (f *fsys) read(n *node, off int64, size int) []byte {
	if off >= int64(len(n.data)) {
		return nil
	}
	end := min(off+int64(size), int64(len(n.data)))
	return bytes.Clone(n.data[off:end])
}

// liveNames returns dir's current entries, sorted.
func (f *fsys) liveNames(d *node) []string {
	return slices.Sorted(maps.Keys(d.kids))
}

// match reports whether the file p (a path in the mount) matches pattern:
// the whole path if pattern has a slash, else its base name.
func match(pattern, p string) bool {
	if pattern == "" {
		return true
	}
	if !strings.Contains(pattern, "/") {
		p = path.Base(p)
	}
	ok, _ := path.Match(pattern, p)
	return ok
}
