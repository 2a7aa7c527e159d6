//go:build linux

package group

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSweep checks what a sweep removes from a directory of regions: the
// files of another boot and those unused for regionAge in which nobody
// waits, not a recent one nor an old one with a live owner's request; and
// that a second sweep within sweepEvery does not look again, while one
// after it does.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * regionAge)
	region := func(name string, age time.Time, owner int32) string {
		t.Helper()
		path := filepath.Join(dir, name+".group")
		mem := make([]byte, regionSize)
		r := &Region{mem: mem}
		r.u64(offMagic).Store(groupMagic)
		r.slot(5).owner().Store(owner)
		if err := os.WriteFile(path, mem, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, age, age); err != nil {
			t.Fatal(err)
		}
		return path
	}
	this := fmt.Sprintf("%x-", bootHash())
	otherBoot := region("1234-other-boot", time.Now(), 0)
	unused := region(this+"unused", old, 0)
	recent := region(this+"recent", time.Now(), 0)
	waiting := region(this+"waiting", old, self)
	dead := region(this+"dead-owner", old, 1<<30) // no such pid

	sweep(dir)
	for path, want := range map[string]bool{otherBoot: false, unused: false, recent: true, waiting: true, dead: false} {
		if _, err := os.Stat(path); (err == nil) != want {
			t.Errorf("%s after a sweep: exists %v, want %v", filepath.Base(path), err == nil, want)
		}
	}

	later := region(this+"unused-later", old, 0)
	sweep(dir)
	if _, err := os.Stat(later); err != nil {
		t.Errorf("a sweep within %v of the last one looked again: %v", sweepEvery, err)
	}
	mark := filepath.Join(dir, "swept")
	if err := os.Chtimes(mark, time.Now().Add(-sweepEvery), time.Now().Add(-sweepEvery)); err != nil {
		t.Fatal(err)
	}
	sweep(dir)
	if _, err := os.Stat(later); err == nil {
		t.Errorf("a sweep %v after the last one left %s", sweepEvery, filepath.Base(later))
	}
}

// TestSweepMarkInFuture checks that a "swept" mark whose mtime lies in the
// future (the wall clock stepped back after it was touched, a restored
// snapshot, touch -d) does not stop the sweeps until the clock catches up:
// an idle region of another boot goes.
func TestSweepMarkInFuture(t *testing.T) {
	dir := t.TempDir()
	mark := filepath.Join(dir, "swept")
	if err := os.WriteFile(mark, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(30 * 24 * time.Hour)
	if err := os.Chtimes(mark, future, future); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "1234-other-boot.group")
	if err := os.WriteFile(stale, make([]byte, regionSize), 0o600); err != nil {
		t.Fatal(err)
	}
	sweep(dir)
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("a mark dated %v in the future stopped the sweep: %s of another boot left", time.Until(future).Round(time.Hour), filepath.Base(stale))
	}
}

// TestSweepMarkSymlink checks that a symlink named "swept" is never
// followed nor written through, and that sweeps go on (every time).
func TestSweepMarkSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(target, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "swept")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		stale := filepath.Join(dir, "1234-other-boot.group")
		if err := os.WriteFile(stale, make([]byte, regionSize), 0o600); err != nil {
			t.Fatal(err)
		}
		sweep(dir)
		if _, err := os.Stat(stale); err == nil {
			t.Errorf("with a symlink as the mark, the sweep did not run")
		}
	}
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(old) {
		t.Errorf("the symlink's target was touched: mtime %v", fi.ModTime())
	}
}
