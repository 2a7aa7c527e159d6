package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// guard says what stops the heartbeat child if its parent dies.
type guard struct {
	pdeathsig bool // Linux: the kernel sends SIGKILL when the parent dies
	pipe      bool // the child's stdin is a pipe from the parent; end of file stops it
}

// heartbeatGuard is what stops a rush's heartbeat child if the rush dies:
// both mechanisms. The tests set it to each alone, and to neither, to show
// that each works and that without them the child does outlive a killed
// rush (see export_test.go).
var heartbeatGuard = guard{pdeathsig: true, pipe: true}

// heartbeatChild is a running "ticket watch" started by the rush.
type heartbeatChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser // with the pipe guard: closing it stops the child
	beats chan heartbeat // the heartbeats it printed; closed at its end
	count chan int       // how many it printed, once its stdout is done
	once  sync.Once
	total int
}

// startHeartbeat starts "ticket watch" on file as a child that cannot
// outlive this process. Its heartbeats arrive on beats, its messages go to
// stderr.
//
// Two mechanisms stop it if this process dies, even by SIGKILL: on Linux
// the parent-death signal (SIGKILL), and everywhere its stdin, a pipe whose
// only writer is this process, reaching end of file. The child also checks
// at start that its parent is still the one that started it.
func startHeartbeat(file string, every time.Duration, g guard, stderr io.Writer) (*heartbeatChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the ticket program to start the heartbeat: %w", err)
	}
	role := "heartbeat:" + strconv.Itoa(os.Getpid())
	if g.pipe {
		role += ":pipe"
	}
	cmd := exec.Command(self, "watch", "-f", file, "--json", "--every", every.String())
	cmd.Env = append(os.Environ(), childEnv+"="+role)
	cmd.Stderr = stderr
	h := &heartbeatChild{cmd: cmd, beats: make(chan heartbeat, 64), count: make(chan int, 1)}
	if g.pipe {
		if h.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, fmt.Errorf("start the heartbeat: %w", err)
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start the heartbeat: %w", err)
	}
	if g.pdeathsig {
		_, err = startTied(cmd)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("start the heartbeat: %w", err)
	}
	go func() {
		n := 0
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var b heartbeat
			if json.Unmarshal(sc.Bytes(), &b) != nil {
				continue
			}
			n++
			select {
			case h.beats <- b:
			default: // nobody is listening fast enough: a heartbeat may be dropped
			}
		}
		close(h.beats)
		h.count <- n
	}()
	return h, nil
}

// stop ends the heartbeat child and waits for it: by closing its stdin, or
// with SIGTERM when it has no pipe, and SIGKILL if it is still there two
// seconds later. It returns the number of heartbeats printed. It may be
// called more than once.
func (h *heartbeatChild) stop() int {
	h.once.Do(func() {
		if h.stdin != nil {
			_ = h.stdin.Close()
		} else {
			_ = h.cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case h.total = <-h.count: // its stdout closed: it has exited, or is exiting
		case <-time.After(2 * time.Second):
			_ = h.cmd.Process.Kill()
			h.total = <-h.count
		}
		_ = h.cmd.Wait()
	})
	return h.total
}
