//go:build linux

package powercut

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// maxWrite is the largest write the kernel sends in one request.
const maxWrite = 128 << 10

// defaultCapacity is the file data a mount holds unless Options say.
const defaultCapacity = 256 << 20

// SeedEnv is the environment variable that sets the seed of a mount whose
// Options give none.
const SeedEnv = "TICKET_POWERCUT_SEED"

// Options configure a mount.
type Options struct {
	// Variant is what a power cut keeps of what was not durable.
	Variant Variant
	// Seed seeds the variant's random choices. 0: $TICKET_POWERCUT_SEED,
	// else a random seed, which New logs if the variant draws at random.
	Seed uint64
	// Capacity is the bytes of file data the file system holds (writes
	// beyond fail with ENOSPC); 0: 256 MiB.
	Capacity int64
}

// Mount is the file system mounted on a test's temporary directory,
// served by a process of its own. Cut, Done, IsCut, Ops and Log may be
// called from any goroutine; the other methods from the test's.
type Mount struct {
	t    testing.TB
	dir  string
	opts Options

	server     *exec.Cmd
	serverDone chan struct{}
	serverLog  *lockedBuffer

	mu  sync.Mutex // one request at a time
	ctl *os.File
	enc *json.Encoder
	dec *json.Decoder

	evMu sync.Mutex
	gen  int
	cuts map[int]chan struct{} // closed when generation's power is cut

	procMu sync.Mutex
	procs  []*Proc
}

// Report says what a power cut did.
type Report struct {
	Variant Variant
	Seed    uint64
	Cut     int    // which cut of the Mount this was, from 0 (a stream of the seed's choices)
	Ops     int    // the operations counted on the mount the cut ended
	Why     string // where the power was cut
	Lost    []string
	Kept    []string // unsynced changes that the variant kept
	Log     []Op     // the operations counted on the mount the cut ended
}

func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "power cut %d (%s, seed %d) %s, %d operations counted on the mount", r.Cut, r.Variant, r.Seed, r.Why, r.Ops)
	for _, s := range r.Lost {
		fmt.Fprintf(&b, "\n  lost: %s", s)
	}
	for _, s := range r.Kept {
		fmt.Fprintf(&b, "\n  kept: %s", s)
	}
	return b.String()
}

// Proc is a process started on the mount by Mount.Start: the power cut
// kills it.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Wait waits for the process to end and returns what exec.Cmd.Wait
// returned.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// ExitCode waits for the process to end and returns its exit status, or
// -1 if a signal (such as the power cut's) killed it.
func (p *Proc) ExitCode() int {
	<-p.done
	return p.Cmd.ProcessState.ExitCode()
}

// New mounts an empty file system on a new temporary directory of t and
// unmounts it when t ends, whatever the outcome. Where FUSE cannot be
// mounted (no /dev/fuse, not root), it skips t saying why.
func New(t testing.TB, opts Options) *Mount {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		t.Skipf("powercut: mounting a FUSE file system needs root (running as uid %d)", uid)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("powercut: no /dev/fuse: %v", err)
	}
	if opts.Capacity == 0 {
		opts.Capacity = defaultCapacity
	}
	if opts.Seed == 0 {
		if s, err := strconv.ParseUint(os.Getenv(SeedEnv), 10, 64); err == nil && s != 0 {
			opts.Seed = s
		} else {
			opts.Seed = rand.Uint64()
		}
		if opts.Variant.random() {
			t.Logf("powercut: seed %d (%s=%d repeats the choices)", opts.Seed, SeedEnv, opts.Seed)
		}
	}
	m := &Mount{t: t, dir: t.TempDir(), opts: opts, cuts: map[int]chan struct{}{}}
	if err := m.startServer(); err != nil {
		t.Fatalf("powercut: %v", err)
	}
	t.Cleanup(m.close)
	resp, err := m.call(request{Op: "mount", Dir: m.dir, Options: opts})
	if resp.Errno == unix.EPERM {
		t.Skipf("powercut: %v", err)
	}
	if err != nil {
		t.Fatalf("powercut: %v", err)
	}
	return m
}

// startServer starts the server process: this test binary again.
func (m *Mount) startServer() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var ctl, ev [2]int
	if ctl, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return err
	}
	if ev, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
		unix.Close(ctl[0])
		unix.Close(ctl[1])
		return err
	}
	theirCtl, theirEv := os.NewFile(uintptr(ctl[1]), "control"), os.NewFile(uintptr(ev[1]), "events")
	defer theirCtl.Close()
	defer theirEv.Close()
	m.ctl = os.NewFile(uintptr(ctl[0]), "control")
	events := os.NewFile(uintptr(ev[0]), "events")
	m.enc, m.dec = json.NewEncoder(m.ctl), json.NewDecoder(m.ctl)
	m.serverLog = &lockedBuffer{}
	m.server = exec.Command(self)
	m.server.Dir = "/"
	m.server.Env = append(os.Environ(), serveEnv+"=1", NoRaceExitDelay())
	m.server.ExtraFiles = []*os.File{theirCtl, theirEv}
	m.server.Stdout, m.server.Stderr = m.serverLog, m.serverLog
	if err := m.server.Start(); err != nil {
		m.ctl.Close()
		events.Close()
		return fmt.Errorf("start the server: %w", err)
	}
	m.serverDone = make(chan struct{})
	go func() {
		_ = m.server.Wait()
		close(m.serverDone)
	}()
	go m.readEvents(events)
	return nil
}

// readEvents closes the generations' channels as their power is cut.
func (m *Mount) readEvents(f *os.File) {
	defer f.Close()
	dec := json.NewDecoder(f)
	for {
		var e event
		if dec.Decode(&e) != nil {
			return
		}
		close(m.cutChan(e.Gen))
	}
}

func (m *Mount) cutChan(gen int) chan struct{} {
	m.evMu.Lock()
	defer m.evMu.Unlock()
	c := m.cuts[gen]
	if c == nil {
		c = make(chan struct{})
		m.cuts[gen] = c
	}
	return c
}

// call sends a request to the server and returns its response.
func (m *Mount) call(req request) (response, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var resp response
	if err := m.enc.Encode(req); err != nil {
		return resp, fmt.Errorf("%s: the server is gone (%v); it said: %s", req.Op, err, m.serverLog)
	}
	if err := m.dec.Decode(&resp); err != nil {
		return resp, fmt.Errorf("%s: the server is gone (%v); it said: %s", req.Op, err, m.serverLog)
	}
	if resp.Err != "" {
		return resp, fmt.Errorf("%s: %s", req.Op, resp.Err)
	}
	return resp, nil
}

// must does req and fails the test (from any goroutine) if it cannot.
func (m *Mount) must(req request) response {
	resp, err := m.call(req)
	if err != nil {
		m.t.Errorf("powercut: %v", err)
	}
	return resp
}

// Dir is the directory the file system is mounted on.
func (m *Mount) Dir() string { return m.dir }

// Path returns name's path in the mount.
func (m *Mount) Path(name string) string { return m.dir + "/" + name }

// CutAt arms the power cut at the nth operation counted from now (see Op):
// that operation fails, and so does every one after it. It replaces any
// trigger set before.
func (m *Mount) CutAt(n int) { m.CutOn(Trigger{Nth: n}) }

// CutOn arms the power cut at the operation t names. It replaces any
// trigger set before.
func (m *Mount) CutOn(t Trigger) { m.must(request{Op: "cuton", Trigger: t}) }

// Cut cuts the power now, if it is not cut yet: every further operation
// on the mount fails with EIO, and the processes started with Start are
// killed (SIGKILL), before any of them sees an operation fail.
func (m *Mount) Cut() { m.must(request{Op: "cut"}) }

// Done is closed when the power of the current mount is cut.
func (m *Mount) Done() <-chan struct{} {
	m.evMu.Lock()
	gen := m.gen
	m.evMu.Unlock()
	return m.cutChan(gen)
}

// IsCut reports whether the power of the current mount is cut. (Done
// may close a moment later: the server tells of the cut after killing
// the processes, and a test may see them end first.)
func (m *Mount) IsCut() bool { return m.must(request{Op: "ops"}).Cut }

// Ops returns the number of operations counted on the current mount.
func (m *Mount) Ops() int { return m.must(request{Op: "ops"}).Ops }

// Log returns the operations counted on the current mount, in order.
func (m *Mount) Log() []Op { return m.must(request{Op: "log"}).Log }

// LogTail returns the last n operations of the current mount, one a
// line, for a failure message.
func (m *Mount) LogTail(n int) string { return logTail(m.Log(), n) }

// LogTail returns the last n operations of the mount the cut ended, one a
// line, for a failure message.
func (r Report) LogTail(n int) string { return logTail(r.Log, n) }

func logTail(ops []Op, n int) string {
	var b strings.Builder
	if len(ops) > n {
		fmt.Fprintf(&b, "(%d operations before)\n", len(ops)-n)
		ops = ops[len(ops)-n:]
	}
	for _, o := range ops {
		b.WriteString(o.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// SyncAll makes everything on the mount durable, as if every file and
// directory were fsynced: the state a test sets up before the part it
// cuts the power under. It is not an operation (nothing is counted).
func (m *Mount) SyncAll() { m.must(request{Op: "syncall"}) }

// Remount cuts the power (if it is not cut yet), ends the mount, and
// mounts on the same directory what the power cut left, under the
// variant's choices; the new mount starts with nothing to lose and counts
// its operations from 0, with no trigger set.
func (m *Mount) Remount() Report {
	m.t.Helper()
	resp, err := m.call(request{Op: "remount"})
	if err != nil {
		m.t.Fatalf("powercut: %v", err)
	}
	m.evMu.Lock()
	m.gen = resp.Gen
	m.evMu.Unlock()
	return resp.Report
}

// Checkpoint makes everything on the mount durable (as SyncAll) and
// remembers that state for Rewind.
func (m *Mount) Checkpoint() { m.must(request{Op: "checkpoint"}) }

// Rewind cuts the power (if it is not cut yet), ends the mount, and mounts
// on the same directory the state of the last Checkpoint, counting
// operations from 0, with no trigger set: a loop over the moment of the
// cut sets its scene once and starts each round from it.
func (m *Mount) Rewind() {
	m.t.Helper()
	resp, err := m.call(request{Op: "rewind"})
	if err != nil {
		m.t.Fatalf("powercut: %v", err)
	}
	m.evMu.Lock()
	m.gen = resp.Gen
	m.evMu.Unlock()
}

// Start starts cmd and has the server track it, so that the power cut
// kills it; it reaps the process itself: use Proc.Wait, not cmd.Wait. A
// process started after the cut is killed at once. Any process the test
// started (directly or not, with Start or not) that asks the mount for
// anything after the cut is killed before it gets the answer; one that
// Start did not track and that does not touch the mount is left running.
func (m *Mount) Start(cmd *exec.Cmd) (*Proc, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	m.procMu.Lock()
	m.procs = append(m.procs, p)
	m.procMu.Unlock()
	if _, err := m.call(request{Op: "track", Pid: cmd.Process.Pid}); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	return p, nil
}

// close ends it all when the test ends: the server cuts the power
// (killing the started processes), unmounts and exits. It fails the test
// if the mount is still there.
func (m *Mount) close() {
	if _, err := m.call(request{Op: "close"}); err != nil {
		m.t.Errorf("powercut: %v", err)
	}
	m.ctl.Close()
	<-m.serverDone
	if ok, _ := Mounted(m.dir); ok {
		// The server died without unmounting: do it here.
		_ = unix.Unmount(m.dir, unix.MNT_FORCE|unix.MNT_DETACH)
		m.t.Errorf("powercut: the server left %s mounted; it said: %s", m.dir, m.serverLog)
	}
	m.procMu.Lock()
	procs := m.procs
	m.procMu.Unlock()
	for _, p := range procs {
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
	if ok, err := Mounted(m.dir); err != nil || ok {
		m.t.Errorf("powercut: %s still mounted after the test (%v)", m.dir, err)
	}
}

// NoRaceExitDelay returns the GORACE setting, as "GORACE=...", that keeps
// the options in the environment and adds atexit_sleep_ms=0: a program
// built with -race otherwise sleeps a second as it exits, which adds up
// over the many short processes of a power-cut test.
func NoRaceExitDelay() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

// lockedBuffer collects the server's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() == 0 {
		return "nothing"
	}
	return l.b.String()
}

// Mounted reports whether dir is a mount point, from /proc/self/mountinfo.
func Mounted(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMountinfo(fields[4]) == dir {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a
// path in /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
