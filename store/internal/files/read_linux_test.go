//go:build linux

package files

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestReadingAsOS: a Reading describes a file as os.Stat does, and
// SameFile matches the two.
func TestReadingAsOS(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "t.json")
	if err := os.WriteFile(reg, []byte(`{"count": 5}`), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(reg, 0o640|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{reg, dir, fifo, "/dev/null"} {
		r, err := OpenReading(path) // a FIFO without a writer: at once
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Stat()
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got.Mode() != want.Mode() || got.Size() != want.Size() || !got.ModTime().Equal(want.ModTime()) || got.Name() != want.Name() || got.IsDir() != want.IsDir() {
			t.Errorf("%s: %v %d %v %q %v, os.Stat: %v %d %v %q %v", path, got.Mode(), got.Size(), got.ModTime(), got.Name(), got.IsDir(), want.Mode(), want.Size(), want.ModTime(), want.Name(), want.IsDir())
		}
		if !SameFile(got, want) || !SameFile(want, got) {
			t.Errorf("%s: not the same file as os.Stat's", path)
		}
		if u, g := Owner(got); u != os.Getuid() && u != 0 || g < 0 {
			t.Errorf("%s: owner %d:%d", path, u, g)
		}
		r.Close()
	}
	other, _ := os.Stat(dir)
	r, _ := OpenReading(reg)
	defer r.Close()
	info, _ := r.Stat()
	if SameFile(info, other) {
		t.Error("two files are the same")
	}
	data, err := io.ReadAll(r)
	if err != nil || string(data) != `{"count": 5}` {
		t.Errorf("read %q, %v", data, err)
	}
}
