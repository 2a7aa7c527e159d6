package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
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

// guards are the values of rush's hidden --heartbeat-guard flag. Only
// "both" is for use; the others let the tests prove each mechanism alone,
// and that without either the child does outlive a killed rush.
var guards = map[string]guard{
	"both":      {pdeathsig: true, pipe: true},
	"pdeathsig": {pdeathsig: true},
	"pipe":      {pipe: true},
	"none":      {},
}

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
func startHeartbeat(self, file string, every time.Duration, g guard, stderr io.Writer) (*heartbeatChild, error) {
	args := []string{"watch", "-f", file, "--json", "--every", every.String(), "--parent", strconv.Itoa(os.Getpid())}
	if g.pipe {
		args = append(args, "--parent-pipe")
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = stderr
	h := &heartbeatChild{cmd: cmd, beats: make(chan heartbeat, 64), count: make(chan int, 1)}
	var err error
	if g.pipe {
		if h.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, fmt.Errorf("start the heartbeat: %w", err)
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start the heartbeat: %w", err)
	}
	if g.pdeathsig && setParentDeathSignal(cmd) {
		err = startOnLockedThread(cmd)
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

// spawner is an OS thread that lives as long as the process, for starting
// children with a parent-death signal: Linux sends that signal when the
// thread that forked the child exits, and the Go runtime ends threads
// while the process goes on (golang.org/issue/27505), unless the thread is
// locked by a goroutine that never unlocks it nor returns.
var spawner = sync.OnceValue(func() chan func() {
	jobs := make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked: this goroutine never returns
		for job := range jobs {
			job()
		}
	}()
	return jobs
})

// startOnLockedThread starts cmd from the spawner thread.
func startOnLockedThread(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	spawner() <- func() { errc <- cmd.Start() }
	return <-errc
}
