package powercut

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// These tests drive the model directly, without FUSE (and without root).

// tree describes f's current tree: path -> "d" for a directory, "ino:
// content" for a file, "-> target" for a symlink.
func tree(f *fsys) map[string]string {
	out := map[string]string{}
	var walk func(ino uint64, p string)
	walk = func(ino uint64, p string) {
		for name, c := range f.nodes[ino].kids {
			n, cp := f.nodes[c], joinPath(p, name)
			switch {
			case n.attr.isDir():
				out[cp] = "d"
				walk(c, cp)
			case n.attr.isSymlink():
				out[cp] = "-> " + n.target
			default:
				out[cp] = fmt.Sprintf("%d:%s", c, n.data)
			}
		}
	}
	walk(rootIno, "")
	return out
}

func show(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%s=%q ", k, m[k])
	}
	return b.String()
}

// script runs operations on f, failing the test on an unexpected error.
type script struct {
	t *testing.T
	f *fsys
}

func (s script) ino(p string) uint64 {
	s.t.Helper()
	ino := uint64(rootIno)
	for _, name := range strings.Split(p, "/") {
		if name == "" {
			continue
		}
		n, err := s.f.lookup(ino, name)
		if err != 0 {
			s.t.Fatalf("lookup %s: %v", p, err)
		}
		ino = n.ino
	}
	return ino
}

func split(p string) (string, string) {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[:i], p[i+1:]
	}
	return "", p
}

func (s script) create(p, content string) {
	s.t.Helper()
	dir, name := split(p)
	n, err := s.f.create(s.ino(dir), name, 0o644, 0, 0)
	if err != 0 {
		s.t.Fatalf("create %s: %v", p, err)
	}
	if content != "" {
		s.f.changeData(n, dataOp{kind: dataWrite, data: []byte(content)})
	}
}

func (s script) write(p string, off int64, content string) {
	s.t.Helper()
	if err := s.f.changeData(s.f.nodes[s.ino(p)], dataOp{kind: dataWrite, off: off, data: []byte(content)}); err != 0 {
		s.t.Fatalf("write %s: %v", p, err)
	}
}

func (s script) mkdir(p string) {
	s.t.Helper()
	dir, name := split(p)
	if _, err := s.f.mkdir(s.ino(dir), name, 0o755, 0, 0); err != 0 {
		s.t.Fatalf("mkdir %s: %v", p, err)
	}
}

func (s script) rename(a, b string) {
	s.t.Helper()
	da, na := split(a)
	db, nb := split(b)
	if err := s.f.rename(s.ino(da), na, s.ino(db), nb, 0); err != 0 {
		s.t.Fatalf("rename %s %s: %v", a, b, err)
	}
}

func (s script) unlink(p string) {
	s.t.Helper()
	dir, name := split(p)
	if err := s.f.unlink(s.ino(dir), name, false); err != 0 {
		s.t.Fatalf("unlink %s: %v", p, err)
	}
}

func (s script) link(a, b string) {
	s.t.Helper()
	dir, name := split(b)
	if _, err := s.f.link(s.ino(a), s.ino(dir), name); err != 0 {
		s.t.Fatalf("link %s %s: %v", a, b, err)
	}
}

func (s script) fsync(p string) { s.t.Helper(); s.f.fsync(s.f.nodes[s.ino(p)], true) }

func (s script) fdatasync(p string) { s.t.Helper(); s.f.fsync(s.f.nodes[s.ino(p)], false) }

// TestModelCases checks what LoseAll and KeepAll leave after sequences
// whose answer POSIX settles.
func TestModelCases(t *testing.T) {
	cases := []struct {
		name      string
		do        func(s script)
		lose, all string // show(tree) after the cut
	}{
		{"file fsynced, directory not", func(s script) {
			s.create("a", "x")
			s.fsync("a")
		}, "", `a="2:x" `},
		{"directory fsynced, file not", func(s script) {
			s.create("a", "x")
			s.fsync("")
		}, `a="2:" `, `a="2:x" `},
		{"both", func(s script) {
			s.create("a", "x")
			s.fdatasync("a")
			s.fsync("")
		}, `a="2:x" `, `a="2:x" `},
		{"unsynced unlink comes back", func(s script) {
			s.create("a", "x")
			s.fdatasync("a")
			s.fsync("")
			s.unlink("a")
		}, `a="2:x" `, ""},
		{"rename over a file, directory not synced", func(s script) {
			s.create("a", "old")
			s.create("a.tmp", "new")
			s.fdatasync("a")
			s.fdatasync("a.tmp")
			s.fsync("")
			s.rename("a.tmp", "a")
		}, `a="2:old" a.tmp="3:new" `, `a="3:new" `},
		{"rename between directories, only the target synced", func(s script) {
			s.mkdir("d")
			s.mkdir("e")
			s.create("d/f", "x")
			s.fdatasync("d/f")
			s.fsync("d")
			s.fsync("e")
			s.fsync("")
			s.rename("d/f", "e/f")
			s.fsync("e")
		}, `d="d" d/f="4:x" e="d" e/f="4:x" `, `d="d" e="d" e/f="4:x" `},
		{"a synced directory in an unsynced one is lost with its files", func(s script) {
			s.mkdir("d")
			s.create("d/f", "x")
			s.fdatasync("d/f")
			s.fsync("d")
		}, "", `d="d" d/f="3:x" `},
		{"hard link, only the first name synced", func(s script) {
			s.create("a", "x")
			s.fdatasync("a")
			s.fsync("")
			s.link("a", "b")
			s.write("a", 1, "y")
		}, `a="2:x" `, `a="2:xy" b="2:xy" `},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, v := range []Variant{LoseAll, KeepAll} {
				f := newFsys(1 << 20)
				c.do(script{t, f})
				r := f.recover(v, rand.New(rand.NewPCG(1, 2)))
				want := c.lose
				if v == KeepAll {
					want = c.all
					if got := show(tree(f)); got != want {
						t.Fatalf("before the cut: %s, the case expects %s", got, want)
					}
				}
				if got := show(tree(r.fs)); got != want {
					t.Errorf("%v: %s, want %s\nlost %q\nkept %q", v, got, want, r.lost, r.kept)
				}
			}
		})
	}
}

// TestModelAttributes: a chmod becomes durable with the file's fsync, or
// with the directory fsync that makes a new name of it durable, not with
// fdatasync.
func TestModelAttributes(t *testing.T) {
	mode := func(f *fsys, p string) uint32 {
		n, err := f.lookup(rootIno, p)
		if err != 0 {
			t.Fatalf("lookup %s: %v", p, err)
		}
		return n.attr.mode & 0o7777
	}
	chmod := func(s script, p string, m uint32) { s.f.setAttrs(s.f.nodes[s.ino(p)], &m, nil, nil) }
	f := newFsys(1 << 20)
	s := script{t, f}
	s.create("a", "x")
	s.create("b", "x")
	s.create("c.tmp", "x")
	s.fsync("")
	chmod(s, "a", 0o600)
	chmod(s, "b", 0o600)
	chmod(s, "c.tmp", 0o600)
	s.fsync("a")
	s.fdatasync("b")
	s.rename("c.tmp", "c")
	s.fsync("")
	g := f.recover(LoseAll, rand.New(rand.NewPCG(1, 2))).fs
	for p, want := range map[string]uint32{"a": 0o600, "b": 0o644, "c": 0o600} {
		if got := mode(g, p); got != want {
			t.Errorf("%s: mode %o after the cut, want %o", p, got, want)
		}
	}
}

// TestModelRandom runs random operations and checks, for each variant,
// properties that hold whatever the operations: the pending data changes
// turn the durable content into the current one; KeepAll gives back the
// current tree; MetaPrefix gives the tree as it was after some prefix of
// the operations since the last sync of everything (found by replaying
// them), MetaLost the one before them.
func TestModelRandom(t *testing.T) {
	runs := 300
	if testing.Short() {
		runs = 50
	}
	for run := range runs {
		rng := rand.New(rand.NewPCG(uint64(run), 7))
		var ops []func(s script) bool
		f := newFsys(1 << 20)
		s := script{t, f}
		s.create("f0", "seed")
		s.mkdir("d0")
		f.syncAll()
		for range 5 + rng.IntN(25) {
			op := randomOp(rng)
			if op(s) {
				ops = append(ops, op)
			}
		}
		for ino, n := range f.nodes {
			if n.attr.isRegular() && string(applyAll(n.ddata, n.pending)) != string(n.data) {
				t.Fatalf("run %d: node %d: durable content and pending changes do not make the current one", run, ino)
			}
		}
		if got, want := show(tree(f.recover(KeepAll, rng).fs)), show(tree(f)); got != want {
			t.Fatalf("run %d: KeepAll gave %s, want %s", run, got, want)
		}
		// The trees after each prefix of the operations, replayed.
		prefixes := map[string]int{}
		for k := 0; k <= len(ops); k++ {
			g := newFsys(1 << 20)
			gs := script{t, g}
			gs.create("f0", "seed")
			gs.mkdir("d0")
			g.syncAll()
			for _, op := range ops[:k] {
				op(gs)
			}
			prefixes[names(g)] = k
		}
		if _, ok := prefixes[names(f.recover(LoseAll, rng).fs)]; !ok {
			t.Fatalf("run %d: LoseAll left %s, not the tree before the operations", run, names(f.recover(LoseAll, rng).fs))
		}
		for seed := range uint64(5) {
			r := f.recover(Variant{DataKept, MetaPrefix}, rand.New(rand.NewPCG(seed, 0)))
			if _, ok := prefixes[names(r.fs)]; !ok {
				t.Fatalf("run %d seed %d: MetaPrefix left %s, the tree after no prefix of the operations\nkept %q", run, seed, names(r.fs), r.kept)
			}
		}
	}
}

// names is the tree's names and inode numbers, without file content
// (which the replay does not reproduce: data ops are not replayed in
// order with the directory operations).
func names(f *fsys) string {
	m := tree(f)
	for k, v := range m {
		if i := strings.Index(v, ":"); i >= 0 {
			m[k] = v[:i]
		}
	}
	return show(m)
}

// randomOp returns a random operation on a small set of names; it
// reports whether it did anything (so that a replay does the same).
func randomOp(rng *rand.Rand) func(s script) bool {
	pick := func() string {
		return []string{"f0", "f1", "f2", "d0/f3", "d0/f4", "d1/f5"}[rng.IntN(6)]
	}
	a, b := pick(), pick()
	data, off := fmt.Sprint(rng.IntN(1000)), int64(rng.IntN(8))
	switch rng.IntN(6) {
	case 0:
		return func(s script) bool {
			dir, name := split(a)
			d, err := s.f.lookup(rootIno, dir)
			if dir == "" {
				d, err = s.f.nodes[rootIno], 0
			}
			if err != 0 {
				return false
			}
			n, err := s.f.create(d.ino, name, 0o644, 0, 0)
			if err == 0 {
				s.f.changeData(n, dataOp{kind: dataWrite, data: []byte(data)})
			}
			return err == 0
		}
	case 1:
		return func(s script) bool {
			return lookupPath(s.f, a) != nil && lookupPath(s.f, parentOf(b)) != nil &&
				s.f.rename(lookupPath(s.f, parentOf(a)).ino, base(a), lookupPath(s.f, parentOf(b)).ino, base(b), 0) == 0
		}
	case 2:
		return func(s script) bool {
			return lookupPath(s.f, a) != nil && s.f.unlink(lookupPath(s.f, parentOf(a)).ino, base(a), false) == 0
		}
	case 3:
		return func(s script) bool {
			if lookupPath(s.f, a) == nil || lookupPath(s.f, parentOf(b)) == nil {
				return false
			}
			_, err := s.f.link(lookupPath(s.f, a).ino, lookupPath(s.f, parentOf(b)).ino, base(b))
			return err == 0
		}
	case 4:
		return func(s script) bool {
			_, err := s.f.mkdir(rootIno, "d1", 0o755, 0, 0)
			return err == 0
		}
	default:
		return func(s script) bool {
			n := lookupPath(s.f, a)
			return n != nil && s.f.changeData(n, dataOp{kind: dataWrite, off: off, data: []byte(data)}) == 0
		}
	}
}

func parentOf(p string) string { d, _ := split(p); return d }

func base(p string) string { _, b := split(p); return b }

// lookupPath returns the node at p, or nil.
func lookupPath(f *fsys, p string) *node {
	n := f.nodes[rootIno]
	for _, name := range strings.Split(p, "/") {
		if name == "" {
			continue
		}
		c, err := f.lookup(n.ino, name)
		if err != 0 {
			return nil
		}
		n = c
	}
	return n
}

// TestModelErrors checks the errors the model gives where a file system
// must refuse.
func TestModelErrors(t *testing.T) {
	f := newFsys(100)
	s := script{t, f}
	s.mkdir("d")
	s.create("d/f", "")
	s.create("a", "")
	for _, c := range []struct {
		what string
		got  syscall.Errno
		want syscall.Errno
	}{
		{"create existing", func() syscall.Errno { _, e := f.create(rootIno, "a", 0o644, 0, 0); return e }(), syscall.EEXIST},
		{"rmdir non-empty", f.unlink(rootIno, "d", true), syscall.ENOTEMPTY},
		{"unlink directory", f.unlink(rootIno, "d", false), syscall.EISDIR},
		{"rename file over directory", f.rename(rootIno, "a", rootIno, "d", 0), syscall.EISDIR},
		{"rename directory into itself", f.rename(rootIno, "d", s.ino("d"), "x", 0), syscall.EINVAL},
		{"rename noreplace", f.rename(rootIno, "a", s.ino("d"), "f", renameNoReplace), syscall.EEXIST},
		{"link directory", func() syscall.Errno { _, e := f.link(s.ino("d"), rootIno, "e"); return e }(), syscall.EPERM},
		{"write past capacity", f.changeData(f.nodes[s.ino("a")], dataOp{kind: dataWrite, data: make([]byte, 101)}), syscall.ENOSPC},
		{"name too long", func() syscall.Errno { _, e := f.create(rootIno, strings.Repeat("x", 256), 0o644, 0, 0); return e }(), syscall.ENAMETOOLONG},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
}

// TestModelSyncedOpsStay: an operation made durable by its directory's
// fsync is never undone or redone by the variants' draws over the
// operations not yet durable.
func TestModelSyncedOpsStay(t *testing.T) {
	f := newFsys(1 << 20)
	s := script{t, f}
	s.create("a", "x")
	s.fsync("")
	s.unlink("a")
	s.create("b", "y")
	s.fsync("")
	s.create("c", "z")
	s.unlink("b")
	seen := map[string]bool{}
	for _, v := range []Variant{LoseAll, KeepAll, {DataKept, MetaEach}, {DataKept, MetaPrefix}} {
		for seed := range uint64(8) {
			got := names(f.recover(v, rand.New(rand.NewPCG(seed, 0))).fs)
			seen[got] = true
			if strings.Contains(got, "a=") {
				t.Errorf("%v seed %d: the durable unlink of a was undone: %s", v, seed, got)
			}
		}
	}
	// The unsynced create of c and unlink of b, each kept or lost: b, b
	// and c, c, nothing.
	if len(seen) != 4 {
		t.Errorf("the draws left %d different trees, want 4: %v", len(seen), slices.Sorted(maps.Keys(seen)))
	}
}
