package files

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestOpenNonblock checks that O_NONBLOCK asked of Open only keeps the open
// from blocking: a FIFO opened read-only with nobody writing does not
// block, and the descriptor Open returns is a blocking one, which
// os.NewFile does not hand to the poller (a one-shot buy then starts no
// epoll instance).
func TestOpenNonblock(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "t.json.lock")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	regular := filepath.Join(dir, "t.json.journal")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		flag int
	}{{fifo, os.O_RDONLY | syscall.O_NONBLOCK}, {regular, os.O_RDWR | syscall.O_NONBLOCK}, {regular, os.O_RDWR}} {
		f, err := Open(c.path, c.flag, 0)
		if err != nil {
			t.Fatalf("Open(%s, %#x): %v", filepath.Base(c.path), c.flag, err)
		}
		fl, err := fcntlFlags(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if fl&syscall.O_NONBLOCK != 0 {
			t.Errorf("Open(%s, %#x) returned a non-blocking descriptor", filepath.Base(c.path), c.flag)
		}
	}
}

func fcntlFlags(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fl int
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		fl = int(r)
		if e != 0 {
			ferr = e
		}
	}); err != nil {
		return 0, err
	}
	return fl, ferr
}
