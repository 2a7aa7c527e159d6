//go:build linux

package powercut

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// read returns the content of name on m, or "(missing)".
func read(t *testing.T, m *Mount, name string) string {
	t.Helper()
	b, err := os.ReadFile(m.Path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return "(missing)"
	}
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

// expect fails the test if name's content on m is not want, with the
// report of the cut.
func expect(t *testing.T, m *Mount, r Report, name, want string) {
	t.Helper()
	if got := read(t, m, name); got != want {
		t.Errorf("after the cut, %s holds %q, want %q\n%s", name, got, want, r)
	}
}

func TestSyncedDataSurvives(t *testing.T) {
	m := New(t, Options{Variant: LoseAll})
	run(t, m, "append:a:hello\n", "fsync:a", "fsyncdir:.")
	r := m.Remount()
	expect(t, m, r, "a", "hello\n")
	if len(r.Lost) != 0 {
		t.Errorf("nothing unsynced, yet the cut lost: %q", r.Lost)
	}
}

func TestUnsyncedDataLost(t *testing.T) {
	m := New(t, Options{Variant: LoseAll})
	run(t, m, "append:a:one\n", "fdatasync:a", "fsyncdir:.", "append:a:two\n")
	if got := read(t, m, "a"); got != "one\ntwo\n" {
		t.Fatalf("before the cut, a holds %q", got)
	}
	r := m.Remount()
	expect(t, m, r, "a", "one\n")
	if !strings.Contains(strings.Join(r.Lost, "\n"), "a: 1 unsynced changes (write [4,+4))") {
		t.Errorf("the report does not say the write was lost:\n%s", r)
	}
}

// setup writes files on m (name, content pairs) and makes them durable.
func setup(t *testing.T, m *Mount, files ...string) {
	t.Helper()
	for i := 0; i+1 < len(files); i += 2 {
		if err := os.WriteFile(m.Path(files[i]), []byte(files[i+1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m.SyncAll()
}

func TestSyncedRenameSurvives(t *testing.T) {
	m := New(t, Options{Variant: LoseAll})
	setup(t, m, "a", "old\n", "a.tmp", "new\n")
	run(t, m, "rename:a.tmp:a", "fsyncdir:.")
	r := m.Remount()
	expect(t, m, r, "a", "new\n")
	expect(t, m, r, "a.tmp", "(missing)")
}

// TestUnsyncedRename renames a file over another without an fsync of the
// directory: the cut loses it under LoseAll, keeps it under MetaKept, and
// under MetaEach and MetaPrefix keeps it or not as the report says, both
// outcomes appearing over a few seeds.
func TestUnsyncedRename(t *testing.T) {
	for _, v := range []Variant{LoseAll, {DataLost, MetaKept}, {DataLost, MetaEach}, {DataLost, MetaPrefix}} {
		t.Run(v.Meta.String(), func(t *testing.T) {
			t.Parallel()
			outcomes := map[bool]int{}
			m := New(t, Options{Variant: v, Seed: 1})
			setup(t, m, "a", "old\n", "a.tmp", "new\n")
			m.Checkpoint()
			for range 8 {
				m.Rewind()
				run(t, m, "rename:a.tmp:a")
				r := m.Remount()
				kept := len(r.Kept) == 1 && r.Kept[0] == "rename a.tmp -> a"
				if !kept && (len(r.Lost) != 1 || r.Lost[0] != "rename a.tmp -> a") {
					t.Fatalf("the report does not say what became of the rename:\n%s", r)
				}
				outcomes[kept]++
				if kept {
					expect(t, m, r, "a", "new\n")
					expect(t, m, r, "a.tmp", "(missing)")
				} else {
					expect(t, m, r, "a", "old\n")
					expect(t, m, r, "a.tmp", "new\n")
				}
			}
			t.Logf("over 8 cuts: rename kept %d times, lost %d", outcomes[true], outcomes[false])
			switch v.Meta {
			case MetaLost:
				if outcomes[true] > 0 {
					t.Errorf("MetaLost kept an unsynced rename")
				}
			case MetaKept:
				if outcomes[false] > 0 {
					t.Errorf("MetaKept lost an unsynced rename")
				}
			default:
				if outcomes[true] == 0 || outcomes[false] == 0 {
					t.Errorf("%v never drew one of the outcomes over 8 cuts: %v", v.Meta, outcomes)
				}
			}
		})
	}
}

// TestMetaPrefixKeepsAPrefix creates six files without syncing the
// directory: MetaPrefix keeps the first k of them, MetaEach any subset
// (and, over the seeds, some that are no prefix).
func TestMetaPrefixKeepsAPrefix(t *testing.T) {
	for _, v := range []Variant{{DataKept, MetaPrefix}, {DataKept, MetaEach}} {
		t.Run(v.Meta.String(), func(t *testing.T) {
			t.Parallel()
			sizes, nonPrefix := map[int]bool{}, 0
			m := New(t, Options{Variant: v, Seed: 1})
			m.Checkpoint()
			for cut := range 10 {
				m.Rewind()
				run(t, m, "append:f1:1", "append:f2:2", "append:f3:3", "append:f4:4", "append:f5:5", "append:f6:6")
				r := m.Remount()
				var have []bool
				n := 0
				for i := 1; i <= 6; i++ {
					got := read(t, m, fmt.Sprintf("f%d", i))
					have = append(have, got != "(missing)")
					if got != "(missing)" {
						n++
						if got != strconv.Itoa(i) {
							t.Errorf("f%d holds %q\n%s", i, got, r)
						}
					}
				}
				prefix := !slices.Contains(have[:n], false)
				if !prefix {
					nonPrefix++
				}
				if v.Meta == MetaPrefix && !prefix {
					t.Errorf("cut %d: files kept %v are not a prefix of the creations\n%s", cut, have, r)
				}
				sizes[n] = true
			}
			t.Logf("over 10 cuts: %d different numbers of files kept, %d times not a prefix", len(sizes), nonPrefix)
			if len(sizes) < 3 {
				t.Errorf("the number of files kept took fewer than 3 values over 10 cuts: %v", sizes)
			}
			if v.Meta == MetaEach && nonPrefix == 0 {
				t.Errorf("MetaEach kept only prefixes over 10 cuts")
			}
		})
	}
}

// TestDataPrefixKeepsAPrefix appends eight lines without a sync after a
// synced first one: DataPrefix keeps the first k of the eight.
func TestDataPrefixKeepsAPrefix(t *testing.T) {
	full := "0\n1\n2\n3\n4\n5\n6\n7\n8\n"
	lengths := map[int]bool{}
	m := New(t, Options{Variant: Variant{DataPrefix, MetaLost}, Seed: 1})
	setup(t, m, "j", "0\n")
	m.Checkpoint()
	for cut := range 10 {
		m.Rewind()
		var steps []string
		for i := 1; i <= 8; i++ {
			steps = append(steps, fmt.Sprintf("append:j:%d\n", i))
		}
		run(t, m, steps...)
		r := m.Remount()
		got := read(t, m, "j")
		if !strings.HasPrefix(full, got) || !strings.HasPrefix(got, "0\n") || len(got)%2 != 0 {
			t.Errorf("cut %d: j holds %q, not the synced line and a prefix of the appended ones\n%s", cut, got, r)
		}
		lengths[len(got)/2-1] = true
	}
	t.Logf("appended lines kept over 10 cuts: %v", slices.Sorted(maps.Keys(lengths)))
	if len(lengths) < 3 {
		t.Errorf("the prefix kept took fewer than 3 lengths over 10 cuts: %v", lengths)
	}
}

// TestDataBlocks overwrites a synced file of three 4 KiB blocks with four:
// each block comes back old or new (the fourth new or zeros), the size old
// or new, and over the seeds some come back mixed.
func TestDataBlocks(t *testing.T) {
	mixed := 0
	m := New(t, Options{Variant: Variant{DataBlocks, MetaLost}, Seed: 1})
	setup(t, m, "b", strings.Repeat("a", 3*4096))
	m.Checkpoint()
	for cut := range 8 {
		m.Rewind()
		run(t, m, "pwrite:b:0:"+strings.Repeat("b", 4*4096))
		r := m.Remount()
		got := read(t, m, "b")
		if len(got) != 3*4096 && len(got) != 4*4096 {
			t.Fatalf("cut %d: size %d, neither the old nor the new\n%s", cut, len(got), r)
		}
		var blocks []byte
		for off := 0; off < len(got); off += 4096 {
			blk := got[off : off+4096]
			switch {
			case blk == strings.Repeat("b", 4096):
				blocks = append(blocks, 'b')
			case blk == strings.Repeat("a", 4096) && off < 3*4096:
				blocks = append(blocks, 'a')
			case blk == strings.Repeat("\x00", 4096) && off == 3*4096:
				blocks = append(blocks, '0')
			default:
				t.Fatalf("cut %d: block %d is neither old nor new\n%s", cut, off/4096, r)
			}
		}
		if bytes.ContainsAny(blocks, "a0") && bytes.Contains(blocks, []byte("b")) {
			mixed++
		}
		t.Logf("cut %d: blocks %s", cut, blocks)
	}
	if mixed == 0 {
		t.Errorf("no cut of 8 mixed old and new blocks")
	}
}

// TestFlockExcludes takes a flock in one process and tries it in another:
// the kernel's local locks must exclude between processes on the mount.
// The control: once the holder is gone, the same try takes the lock.
func TestFlockExcludes(t *testing.T) {
	m := New(t, Options{Variant: LoseAll})
	say := func(c *child, want ...string) {
		t.Helper()
		for _, w := range want {
			if l := c.line(); l != w {
				t.Fatalf("a helper said %q, want %q", l, w)
			}
		}
	}
	holder := startChild(t, m, "flock:f.lock")
	say(holder, "locked f.lock", "ready")
	other := startChild(t, m, "tryflock:f.lock")
	say(other, "busy f.lock", "ready")
	other.finish(t)
	holder.finish(t)
	again := startChild(t, m, "tryflock:f.lock")
	say(again, "locked f.lock", "ready")
	again.finish(t)
}

// finished waits until the child has said "ready" (it did all its steps)
// or has died, and reports which.
func (c *child) finished() bool {
	if c.line() == "ready" {
		return true
	}
	<-c.Done()
	return false
}

// TestCutAtEveryOperation loops the cut over every counted operation of a
// child that creates a file, syncs it, renames it and syncs the rename,
// until the child completes: each cut kills the child at the operation
// named, and leaves exactly what was synced before it.
func TestCutAtEveryOperation(t *testing.T) {
	steps := []string{"append:f:x", "fdatasync:f", "fsyncdir:.", "rename:f:g", "fsyncdir:."}
	names := []string{"create", "write", "fdatasync", "fsyncdir", "rename", "fsyncdir"}
	// What f and g hold after a cut at operation n (n-1 done).
	want := func(n int) (string, string) {
		switch {
		case n <= 4:
			return "(missing)", "(missing)" // the name is not durable before the first fsyncdir
		case n <= 6:
			return "x", "(missing)" // the rename is not durable before the second
		}
		return "(missing)", "x"
	}
	cuts := 0
	m := New(t, Options{Variant: LoseAll})
	m.Checkpoint()
	for n := 1; ; n++ {
		m.Rewind()
		m.CutAt(n)
		c := startChild(t, m, steps...)
		done := c.finished()
		log := m.Log()
		if done {
			if m.IsCut() || len(log) != len(names) {
				t.Fatalf("n=%d: the child completed, yet cut %v after %d operations\n%s", n, m.IsCut(), len(log), m.LogTail(20))
			}
			r := m.Remount()
			f, g := want(n)
			expect(t, m, r, "f", f)
			expect(t, m, r, "g", g)
			break
		}
		cuts++
		if code := c.ExitCode(); code != -1 {
			t.Fatalf("n=%d: the child exited %d: it saw the cut, not killed before\n%s", n, code, m.LogTail(20))
		}
		if len(log) != n || !log[n-1].Cut || log[n-1].Name != names[n-1] || log[n-1].Err != syscall.EIO {
			t.Fatalf("n=%d: want the cut at operation %d (%s):\n%s", n, n, names[n-1], m.LogTail(20))
		}
		r := m.Remount()
		f, g := want(n)
		expect(t, m, r, "f", f)
		expect(t, m, r, "g", g)
	}
	t.Logf("%d operations, %d cuts, one at each", len(names), cuts)
	if cuts != len(names) {
		t.Errorf("%d cuts for %d operations", cuts, len(names))
	}
}

// TestTriggers cuts at a named operation on a named file, before it takes
// effect or just after (its caller still never hears back).
func TestTriggers(t *testing.T) {
	steps := []string{"append:a.txt:1", "fdatasync:a.txt", "append:x.journal:2", "fdatasync:x.journal", "append:x.journal:3", "fdatasync:x.journal"}
	for _, c := range []struct {
		trigger Trigger
		at      int    // the operation cut at
		journal string // x.journal after the cut
	}{
		{Trigger{Op: "fdatasync", Path: "*.journal"}, 4, ""},
		{Trigger{Op: "fdatasync", Path: "*.journal", After: true}, 4, "2"},
		{Trigger{Op: "fdatasync", Path: "*.journal", Nth: 2}, 6, "2"},
		{Trigger{Op: "fdatasync", Path: "*.journal", Nth: 2, After: true}, 6, "23"},
		{Trigger{Op: "write", Path: "x.journal", Nth: 2}, 5, "2"},
		{Trigger{Path: "*.txt", Nth: 2}, 2, ""},
	} {
		t.Run(fmt.Sprintf("%+v", c.trigger), func(t *testing.T) {
			m := New(t, Options{Variant: LoseAll})
			setup(t, m, "a.txt", "", "x.journal", "")
			base := m.Ops() // the set-up's two creations
			m.CutOn(c.trigger)
			ch := startChild(t, m, steps...)
			if ch.finished() {
				t.Fatalf("the child completed: no cut\n%s", m.LogTail(20))
			}
			if code := ch.ExitCode(); code != -1 {
				t.Errorf("the child exited %d, not killed", code)
			}
			log := m.Log()
			if len(log) != base+c.at || !log[base+c.at-1].Cut {
				t.Fatalf("want the cut at operation %d after the set-up's %d:\n%s", c.at, base, m.LogTail(20))
			}
			r := m.Remount()
			expect(t, m, r, "x.journal", c.journal)
			if c.at > 2 {
				expect(t, m, r, "a.txt", "1")
			}
		})
	}
}
