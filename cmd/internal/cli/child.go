package cli

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// childEnv names the environment variable that makes this program a child
// of itself: see the package documentation.
const childEnv = "TICKET_CHILD"

// runChild plays the part role names, with the command line args, and
// returns the exit status.
func runChild(role string, args []string) int {
	os.Unsetenv(childEnv) // not for the processes a child starts
	c := newCLI(os.Stdout, os.Stderr)
	part, rest, _ := strings.Cut(role, ":")
	switch part {
	case "gated":
		c.extra.Released = atGate().UnixNano()
		return c.run(args)
	case "booker":
		released := atGate()
		return bookerChild(c, released, args)
	case "bench":
		atGate()
		c.name = "bench"
		return c.exit(benchWorker(c, args))
	case "heartbeat":
		pid, guard, _ := strings.Cut(rest, ":")
		// The parent may have died before the parent-death signal was
		// armed: then this process already belongs to init, or a
		// subreaper.
		if strconv.Itoa(os.Getppid()) != pid {
			fmt.Fprintf(c.stderr, "ticket watch: parent %s is gone; stopping\n", pid)
			return exitOK
		}
		if guard == "pipe" {
			c.parentGone = make(chan struct{})
			go func() {
				_, _ = io.Copy(io.Discard, os.Stdin)
				close(c.parentGone)
			}()
		}
		return c.run(args)
	}
	fmt.Fprintf(c.stderr, "ticket: error: %s=%q is not a part this program plays\n", childEnv, role)
	return exitUsage
}

// atGate says this child is at the gate, waits until it opens, and returns
// when it did.
func atGate() time.Time {
	ready := os.NewFile(3, "ready")
	_, _ = ready.Write([]byte{1})
	_ = ready.Close()
	// Blocks until every writer of stdin has closed it: the launcher starts
	// all its children first, then closes its end once.
	_, _ = io.Copy(io.Discard, os.Stdin)
	return time.Now()
}

// gate is the one launcher of gated children: it starts them, each held
// at the gate, and lets them all go at once when every one is there.
type gate struct {
	self                         string // this program
	gateR, gateW, readyR, readyW *os.File
}

// newGate makes a closed gate.
func newGate() (*gate, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the ticket program to start: %w", err)
	}
	g := &gate{self: self}
	if g.gateR, g.gateW, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("make the start gate: %w", err)
	}
	if g.readyR, g.readyW, err = os.Pipe(); err != nil {
		g.gateR.Close()
		g.gateW.Close()
		return nil, fmt.Errorf("make the start gate: %w", err)
	}
	return g, nil
}

// command returns this program as a child held at the gate, playing role
// ("gated" or "bench") with args.
func (g *gate) command(role string, args ...string) *exec.Cmd {
	cmd := exec.Command(g.self, args...)
	cmd.Env = append(os.Environ(), childEnv+"="+role)
	cmd.Stdin = g.gateR
	cmd.ExtraFiles = []*os.File{g.readyW}
	return cmd
}

// open waits until every child started is at the gate (or dead), then lets
// them all go at once. It returns how many said they were at the gate,
// and when they were let go.
func (g *gate) open() (ready int64, released time.Time, err error) {
	g.gateR.Close()
	g.readyW.Close()
	defer g.gateW.Close()
	ready, err = io.Copy(io.Discard, g.readyR)
	g.readyR.Close()
	released = time.Now()
	if err != nil {
		return ready, released, fmt.Errorf("wait for the children at the start gate: %w", err)
	}
	return ready, released, g.gateW.Close() // every child now reads end of file: they are off
}

// close closes the gate for good, on a failure before open: the children
// it started read end of file and go, or are killed by the caller.
func (g *gate) close() {
	for _, f := range []*os.File{g.gateR, g.gateW, g.readyR, g.readyW} {
		f.Close()
	}
}

// startTied starts cmd so that it dies with this process, even if this
// process is killed with SIGKILL, where the system can (Linux: the
// parent-death signal; see setParentDeathSignal). The kernel sends that
// signal when the thread that started the child exits, and the Go runtime
// ends threads while the process goes on (golang.org/issue/27505): cmd is
// started from a thread that lives as long as the process. It reports
// whether the child is tied.
func startTied(cmd *exec.Cmd) (bool, error) {
	if !setParentDeathSignal(cmd) {
		return false, cmd.Start()
	}
	errc := make(chan error, 1)
	spawner() <- func() { errc <- cmd.Start() }
	return true, <-errc
}

// spawner is the OS thread that starts tied children: it lives as long as
// the process, locked by a goroutine that never unlocks it nor returns.
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
