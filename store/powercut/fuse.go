//go:build linux

package powercut

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Op is one operation the file system was asked to do that changes its
// state or syncs (the operations a power cut is counted in).
type Op struct {
	N    int    // its place among the counted operations of the mount, from 1
	Name string // write, truncate, fallocate, chmod, chown, utimes, create, mkdir, symlink, link, unlink, rmdir, rename, fsync, fdatasync, fsyncdir
	Path string // the file, relative to the mount's root ("" is the root); rename, link: the old name
	To   string // rename, link: the new name; symlink: the target
	Off  int64  // write, fallocate: the offset; truncate: the new size
	Len  int64  // write, fallocate: the length
	Pid  uint32 // the calling process (0: the kernel, such as a page written back)
	Err  syscall.Errno
	Cut  bool // the power was cut at this operation
}

func (o Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d pid %d %s %s", o.N, o.Pid, o.Name, quote(o.Path))
	switch o.Name {
	case "rename", "link":
		fmt.Fprintf(&b, " -> %s", quote(o.To))
	case "symlink":
		fmt.Fprintf(&b, " -> %q", o.To)
	case "write", "fallocate":
		fmt.Fprintf(&b, " [%d,+%d)", o.Off, o.Len)
	case "truncate":
		fmt.Fprintf(&b, " to %d", o.Off)
	}
	if o.Err != 0 {
		fmt.Fprintf(&b, ": %v", o.Err)
	}
	if o.Cut {
		b.WriteString(" (power cut here)")
	}
	return b.String()
}

func quote(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// Trigger names the operation at which the power is cut.
type Trigger struct {
	// Op is the operation's name, as in Op.Name; empty: any.
	Op string
	// Path is a path.Match pattern for the file: for the base name if it
	// has no slash ("*.journal"), else for the path in the mount; empty:
	// any. A rename or link matches by its old or its new name.
	Path string
	// Nth picks the Nth operation matching since the trigger was set (0
	// or 1: the first).
	Nth int
	// After lets the operation take effect (and, for a sync, become
	// durable) before the power fails; its caller still gets EIO.
	After bool
}

func (t Trigger) matches(o *Op) bool {
	if t.Op != "" && t.Op != o.Name {
		return false
	}
	return t.Path == "" || match(t.Path, o.Path) || o.To != "" && o.Name != "symlink" && match(t.Path, o.To)
}

// server is the FUSE side of one mount: it turns the kernel's requests
// into fsys's operations, counts them, keeps their log and cuts the power.
type server struct {
	fuse.RawFileSystem // ENOSYS for all that is not here

	mu      sync.Mutex
	fs      *fsys
	cut     bool
	cutWhy  string
	onCut   func()           // called with mu held, once, at the cut
	kill    func(tid uint32) // kills a caller after the cut (if the test started it)
	count   int
	log     []Op
	trigger *Trigger
	seen    int
	fhs     map[uint64]*handle
	nextFh  uint64
	timeout time.Duration
}

type handle struct {
	n     *node
	names []fuse.DirEntry // directory: its entries when opened
}

func newServer(fs *fsys, onCut func(), kill func(tid uint32)) *server {
	return &server{
		RawFileSystem: fuse.NewDefaultRawFileSystem(),
		fs:            fs,
		onCut:         onCut,
		kill:          kill,
		fhs:           map[uint64]*handle{},
		nextFh:        1,
		timeout:       time.Second,
	}
}

func (s *server) String() string { return "powercut" }

// cutNow cuts the power: from now on every operation fails.
func (s *server) cutNow(why string) {
	if s.cut {
		return
	}
	s.cut, s.cutWhy = true, why
	s.onCut()
}

// dead reports whether the power is cut; if so, it kills the calling
// process first (if the test started it), which so never sees the
// operation fail.
func (s *server) dead(pid uint32) bool {
	if !s.cut {
		return false
	}
	if pid != 0 {
		s.kill(pid)
	}
	return true
}

// begin counts a state-changing operation and logs it; it returns EIO if
// the power is (now) cut before it.
func (s *server) begin(o Op) (int, fuse.Status) {
	s.count++
	o.N = s.count
	s.log = append(s.log, o)
	i := len(s.log) - 1
	if t := s.trigger; t != nil && t.matches(&o) {
		s.seen++
		if s.seen >= max(t.Nth, 1) && !t.After {
			s.trigger = nil
			s.log[i].Cut, s.log[i].Err = true, syscall.EIO
			s.cutNow("at " + s.log[i].String())
			s.dead(o.Pid)
			return i, fuse.EIO
		}
	}
	return i, fuse.OK
}

// end records the result of the operation begun as i, and cuts the power
// after it if the trigger says so.
func (s *server) end(i int, st fuse.Status) fuse.Status {
	s.log[i].Err = syscall.Errno(st)
	if t := s.trigger; t != nil && t.After && t.matches(&s.log[i]) && s.seen >= max(t.Nth, 1) {
		s.trigger = nil
		s.log[i].Cut = true
		s.cutNow("after " + s.log[i].String())
		s.dead(s.log[i].Pid)
		return fuse.EIO
	}
	return st
}

func (s *server) node(ino uint64) (*node, fuse.Status) {
	n, err := s.fs.get(ino)
	return n, fuse.Status(err)
}

func (s *server) fillAttr(n *node, a *fuse.Attr) {
	size := uint64(len(n.data))
	switch {
	case n.attr.isDir():
		size = blockSize
	case n.attr.isSymlink():
		size = uint64(len(n.target))
	}
	*a = fuse.Attr{
		Ino: n.ino, Size: size, Blocks: (size + 511) / 512,
		Mode: n.attr.mode, Nlink: n.nlink, Owner: fuse.Owner{Uid: n.attr.uid, Gid: n.attr.gid},
		Blksize: blockSize,
	}
	a.SetTimes(&n.attr.atime, &n.attr.mtime, &n.attr.ctime)
}

func (s *server) fillEntry(n *node, out *fuse.EntryOut) {
	out.NodeId, out.Generation = n.ino, 0
	out.SetEntryTimeout(s.timeout)
	out.SetAttrTimeout(s.timeout)
	s.fillAttr(n, &out.Attr)
}

func (s *server) Lookup(_ <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(h.Pid) {
		return fuse.EIO
	}
	n, err := s.fs.lookup(h.NodeId, name)
	if err != 0 {
		return fuse.Status(err)
	}
	s.fillEntry(n, out)
	return fuse.OK
}

func (s *server) Forget(nodeid, nlookup uint64) {} // nodes live as long as the mount

func (s *server) GetAttr(_ <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(in.Pid) {
		return fuse.EIO
	}
	n := s.fs.nodes[in.NodeId] // an open file may have no name left
	if n == nil {
		return fuse.ENOENT
	}
	out.SetTimeout(s.timeout)
	s.fillAttr(n, &out.Attr)
	return fuse.OK
}

func (s *server) SetAttr(_ <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(in.Pid) {
		return fuse.EIO
	}
	n := s.fs.nodes[in.NodeId]
	if n == nil {
		return fuse.ENOENT
	}
	size, hasSize := in.GetSize()
	mode, hasMode := in.GetMode()
	uid, hasUID := in.GetUID()
	gid, hasGID := in.GetGID()
	atime, hasA := in.GetATime()
	mtime, hasM := in.GetMTime()
	o := Op{Path: s.fs.path(n.ino), Pid: in.Pid}
	switch {
	case hasSize:
		o.Name, o.Off = "truncate", int64(size)
	case hasMode:
		o.Name = "chmod"
	case hasUID || hasGID:
		o.Name = "chown"
	default:
		o.Name = "utimes"
	}
	i, st := s.begin(o)
	if !st.Ok() {
		return st
	}
	if hasSize {
		if n.attr.isDir() {
			return s.end(i, fuse.Status(syscall.EISDIR))
		}
		if err := s.fs.changeData(n, dataOp{kind: dataTruncate, n: int64(size)}); err != 0 {
			return s.end(i, fuse.Status(err))
		}
	}
	var pm, pu, pg *uint32
	if hasMode {
		pm = &mode
	}
	if hasUID {
		pu = &uid
	}
	if hasGID {
		pg = &gid
	}
	if pm != nil || pu != nil || pg != nil {
		s.fs.setAttrs(n, pm, pu, pg)
	}
	if hasA {
		n.attr.atime = atime
	}
	if hasM {
		n.attr.mtime = mtime
	}
	if hasA || hasM {
		n.attr.ctime = time.Now()
	}
	out.SetTimeout(s.timeout)
	s.fillAttr(n, &out.Attr)
	return s.end(i, fuse.OK)
}

// newEntry runs an operation that makes a name, and answers with its node.
func (s *server) newEntry(o Op, out *fuse.EntryOut, do func() (*node, syscall.Errno)) fuse.Status {
	if s.dead(o.Pid) {
		return fuse.EIO
	}
	i, st := s.begin(o)
	if !st.Ok() {
		return st
	}
	n, err := do()
	if err != 0 {
		return s.end(i, fuse.Status(err))
	}
	s.fillEntry(n, out)
	return s.end(i, fuse.OK)
}

func (s *server) Mknod(_ <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newEntry(Op{Name: "create", Path: s.fs.childPath(in.NodeId, name), Pid: in.Pid}, out, func() (*node, syscall.Errno) {
		if in.Mode&syscall.S_IFMT != syscall.S_IFREG {
			return nil, syscall.EPERM // no devices, FIFOs or sockets
		}
		return s.fs.create(in.NodeId, name, in.Mode, in.Uid, in.Gid)
	})
}

func (s *server) Mkdir(_ <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newEntry(Op{Name: "mkdir", Path: s.fs.childPath(in.NodeId, name), Pid: in.Pid}, out, func() (*node, syscall.Errno) {
		return s.fs.mkdir(in.NodeId, name, in.Mode, in.Uid, in.Gid)
	})
}

func (s *server) Symlink(_ <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newEntry(Op{Name: "symlink", Path: s.fs.childPath(h.NodeId, name), To: target, Pid: h.Pid}, out, func() (*node, syscall.Errno) {
		return s.fs.symlink(h.NodeId, name, target, h.Uid, h.Gid)
	})
}

func (s *server) Link(_ <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newEntry(Op{Name: "link", Path: s.fs.path(in.Oldnodeid), To: s.fs.childPath(in.NodeId, name), Pid: in.Pid}, out, func() (*node, syscall.Errno) {
		return s.fs.link(in.Oldnodeid, in.NodeId, name)
	})
}

func (s *server) Readlink(_ <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(h.Pid) {
		return nil, fuse.EIO
	}
	n, st := s.node(h.NodeId)
	if !st.Ok() {
		return nil, st
	}
	if !n.attr.isSymlink() {
		return nil, fuse.EINVAL
	}
	return []byte(n.target), fuse.OK
}

func (s *server) remove(h *fuse.InHeader, name string, rmdir bool) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(h.Pid) {
		return fuse.EIO
	}
	o := Op{Name: "unlink", Path: s.fs.childPath(h.NodeId, name), Pid: h.Pid}
	if rmdir {
		o.Name = "rmdir"
	}
	i, st := s.begin(o)
	if !st.Ok() {
		return st
	}
	return s.end(i, fuse.Status(s.fs.unlink(h.NodeId, name, rmdir)))
}

func (s *server) Unlink(_ <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return s.remove(h, name, false)
}

func (s *server) Rmdir(_ <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return s.remove(h, name, true)
}

func (s *server) Rename(_ <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(in.Pid) {
		return fuse.EIO
	}
	i, st := s.begin(Op{Name: "rename", Path: s.fs.childPath(in.NodeId, oldName), To: s.fs.childPath(in.Newdir, newName), Pid: in.Pid})
	if !st.Ok() {
		return st
	}
	return s.end(i, fuse.Status(s.fs.rename(in.NodeId, oldName, in.Newdir, newName, in.Flags)))
}

func (s *server) Access(_ <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	return fuse.OK // default_permissions: the kernel checks
}

func (s *server) open(n *node) uint64 {
	fh := s.nextFh
	s.nextFh++
	s.fhs[fh] = &handle{n: n}
	n.opens++
	return fh
}

func (s *server) Create(_ <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(in.Pid) {
		return fuse.EIO
	}
	if n, err := s.fs.lookup(in.NodeId, name); err == 0 {
		// The kernel looks the name up first under the directory's lock,
		// so this is unusual; do as open(2) would.
		if in.Flags&syscall.O_EXCL != 0 {
			return fuse.Status(syscall.EEXIST)
		}
		s.fillEntry(n, &out.EntryOut)
		out.Fh = s.open(n)
		return fuse.OK
	}
	return s.newEntry(Op{Name: "create", Path: s.fs.childPath(in.NodeId, name), Pid: in.Pid}, &out.EntryOut, func() (*node, syscall.Errno) {
		n, err := s.fs.create(in.NodeId, name, in.Mode, in.Uid, in.Gid)
		if err == 0 {
			out.Fh = s.open(n)
		}
		return n, err
	})
}

func (s *server) Open(_ <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(in.Pid) {
		return fuse.EIO
	}
	n, st := s.node(in.NodeId)
	if !st.Ok() {
		return st
	}
	if n.attr.isDir() {
		return fuse.Status(syscall.EISDIR)
	}
	out.Fh = s.open(n)
	return fuse.OK
}

func (s *server) Read(_ <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(in.Pid) {
		return nil, fuse.EIO
	}
	h := s.fhs[in.Fh]
	if h == nil {
		return nil, fuse.EBADF
	}
	return fuse.ReadResultData(s.fs.read(h.n, int64(in.Offset), int(in.Size))), fuse.OK
}

func (s *server) Write(_ <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(in.Pid) {
		return 0, fuse.EIO
	}
	h := s.fhs[in.Fh]
	if h == nil {
		return 0, fuse.EBADF
	}
	i, st := s.begin(Op{Name: "write", Path: s.fs.path(h.n.ino), Off: int64(in.Offset), Len: int64(len(data)), Pid: in.Pid})
	if !st.Ok() {
		return 0, st
	}
	if err := s.fs.changeData(h.n, dataOp{kind: dataWrite, off: int64(in.Offset), data: data}); err != 0 {
		return 0, s.end(i, fuse.Status(err))
	}
	if st := s.end(i, fuse.OK); !st.Ok() {
		return 0, st
	}
	return uint32(len(data)), fuse.OK
}

func (s *server) Fallocate(_ <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(in.Pid) {
		return fuse.EIO
	}
	h := s.fhs[in.Fh]
	if h == nil {
		return fuse.EBADF
	}
	i, st := s.begin(Op{Name: "fallocate", Path: s.fs.path(h.n.ino), Off: int64(in.Offset), Len: int64(in.Length), Pid: in.Pid})
	if !st.Ok() {
		return st
	}
	o := dataOp{off: int64(in.Offset), n: int64(in.Length), keep: in.Mode&unix.FALLOC_FL_KEEP_SIZE != 0}
	switch in.Mode &^ unix.FALLOC_FL_KEEP_SIZE {
	case 0:
		if o.keep {
			return s.end(i, fuse.OK) // allocation only: nothing a reader sees
		}
		o.kind = dataExtend
	case unix.FALLOC_FL_PUNCH_HOLE, unix.FALLOC_FL_ZERO_RANGE:
		if in.Mode&unix.FALLOC_FL_PUNCH_HOLE != 0 && !o.keep {
			return s.end(i, fuse.EINVAL)
		}
		o.kind = dataZero
	default:
		return s.end(i, fuse.Status(syscall.EOPNOTSUPP))
	}
	return s.end(i, fuse.Status(s.fs.changeData(h.n, o)))
}

func (s *server) Flush(_ <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(in.Pid) {
		return fuse.EIO
	}
	return fuse.OK
}

func (s *server) Release(_ <-chan struct{}, in *fuse.ReleaseIn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.release(in.Fh)
}

func (s *server) release(fh uint64) {
	if h := s.fhs[fh]; h != nil {
		delete(s.fhs, fh)
		h.n.opens--
		s.fs.maybeDead(h.n)
	}
}

func (s *server) sync(in *fuse.FsyncIn, dir bool) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(in.Pid) {
		return fuse.EIO
	}
	n := s.fs.nodes[in.NodeId]
	if n == nil {
		return fuse.ENOENT
	}
	name := "fsync"
	switch {
	case dir:
		name = "fsyncdir"
	case in.FsyncFlags&1 != 0:
		name = "fdatasync"
	}
	i, st := s.begin(Op{Name: name, Path: s.fs.path(n.ino), Pid: in.Pid})
	if !st.Ok() {
		return st
	}
	s.fs.fsync(n, name == "fsync")
	return s.end(i, fuse.OK)
}

func (s *server) Fsync(_ <-chan struct{}, in *fuse.FsyncIn) fuse.Status { return s.sync(in, false) }

func (s *server) FsyncDir(_ <-chan struct{}, in *fuse.FsyncIn) fuse.Status { return s.sync(in, true) }

func (s *server) OpenDir(_ <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(in.Pid) {
		return fuse.EIO
	}
	d, err := s.fs.dir(in.NodeId)
	if err != 0 {
		return fuse.Status(err)
	}
	parent := uint64(rootIno)
	if len(d.links) > 0 {
		parent = d.links[0].dir
	}
	names := []fuse.DirEntry{{Name: ".", Ino: d.ino, Mode: syscall.S_IFDIR}, {Name: "..", Ino: parent, Mode: syscall.S_IFDIR}}
	for _, name := range s.fs.liveNames(d) {
		c := s.fs.nodes[d.kids[name]]
		names = append(names, fuse.DirEntry{Name: name, Ino: c.ino, Mode: c.attr.mode})
	}
	out.Fh = s.open(d)
	s.fhs[out.Fh].names = names
	return fuse.OK
}

func (s *server) ReadDir(_ <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(in.Pid) {
		return fuse.EIO
	}
	h := s.fhs[in.Fh]
	if h == nil {
		return fuse.EBADF
	}
	for i := int(in.Offset); i < len(h.names); i++ {
		e := h.names[i]
		e.Off = uint64(i + 1)
		if !out.AddDirEntry(e) {
			break
		}
	}
	return fuse.OK
}

func (s *server) ReleaseDir(in *fuse.ReleaseIn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.release(in.Fh)
}

func (s *server) StatFs(_ <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead(h.Pid) {
		return fuse.EIO
	}
	free := uint64(max(s.fs.capacity-s.fs.used, 0)) / blockSize
	live := 0
	for _, n := range s.fs.nodes {
		if !n.dead {
			live++
		}
	}
	*out = fuse.StatfsOut{
		Blocks: uint64(s.fs.capacity) / blockSize, Bfree: free, Bavail: free,
		Files: 1 << 20, Ffree: uint64(max(1<<20-live, 0)),
		Bsize: blockSize, Frsize: blockSize, NameLen: maxName,
	}
	return fuse.OK
}

// snapshotLog returns a copy of the operations log.
func (s *server) snapshotLog() []Op {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}
