//go:build linux

package powercut

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The file system is served by a process of its own: the test binary run
// again with serveEnv set, which the init function below turns into the
// server before any test runs. In the test's own process, a child started
// with os/exec (vfork) that touches the mount before its exec would wait
// for a server that a garbage collection can stop until that exec: a
// deadlock. The server also outlives a test process that dies, and then
// unmounts.
//
// The test process talks to it over two sockets: requests and responses
// as JSON on fd 3, and the power cuts, as they happen, on fd 4.

const serveEnv = "POWERCUT_INTERNAL_SERVE"

func init() {
	if os.Getenv(serveEnv) == "1" {
		os.Exit(serve(os.NewFile(3, "control"), os.NewFile(4, "events")))
	}
}

// request is what the test process asks the server.
type request struct {
	Op      string // mount, cuton, cut, ops, log, syncall, remount, track, close
	Dir     string
	Options Options
	Trigger Trigger
	Pid     int
}

// response is the server's answer.
type response struct {
	Err    string
	Errno  syscall.Errno // of a failed mount
	Ops    int
	Log    []Op
	Report Report
	Gen    int  // the mount's generation: 0, then one more at each remount
	Cut    bool // its power is cut
}

// event tells the test process that the power of generation Gen was cut.
type event struct{ Gen int }

// daemon is the server process's state.
type daemon struct {
	dir     string
	opts    Options
	testPid int // the test process, which started this one

	mu     sync.Mutex // guards the following
	srv    *server
	fsrv   *fuse.Server
	served chan struct{} // closed when fsrv's loop has ended
	gen    int
	// checkpoint is the state Rewind mounts again.
	checkpoint *fsys

	evMu   sync.Mutex
	events *json.Encoder

	procMu sync.Mutex
	pidfds []int // the processes a cut kills
	cut    bool  // the current generation's power is cut
}

func serve(ctl, ev *os.File) int {
	d := &daemon{events: json.NewEncoder(ev), testPid: os.Getppid()}
	dec, enc := json.NewDecoder(ctl), json.NewEncoder(ctl)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			break // the test process is gone: clean up
		}
		resp := d.handle(req)
		if err := enc.Encode(resp); err != nil || req.Op == "close" {
			break
		}
	}
	if err := d.shutdown(); err != nil {
		fmt.Fprintf(os.Stderr, "powercut server: %v\n", err)
		return 1
	}
	return 0
}

func (d *daemon) handle(req request) (resp response) {
	fail := func(err error) response {
		resp.Err = err.Error()
		errors.As(err, &resp.Errno)
		return resp
	}
	if req.Op == "mount" {
		d.dir, d.opts = req.Dir, req.Options
		if err := d.mount(newFsys(d.opts.Capacity)); err != nil {
			return fail(err)
		}
		return resp
	}
	d.mu.Lock()
	s, gen := d.srv, d.gen
	d.mu.Unlock()
	resp.Gen = gen
	if s == nil {
		return fail(errors.New("not mounted"))
	}
	switch req.Op {
	case "cuton":
		s.mu.Lock()
		t := req.Trigger
		s.trigger, s.seen = &t, 0
		s.mu.Unlock()
	case "cut":
		s.mu.Lock()
		s.cutNow("on demand")
		s.mu.Unlock()
	case "ops":
		s.mu.Lock()
		resp.Ops, resp.Cut = s.count, s.cut
		s.mu.Unlock()
	case "log":
		resp.Log = s.snapshotLog()
	case "syncall":
		s.mu.Lock()
		s.fs.syncAll()
		s.mu.Unlock()
	case "track":
		if err := d.track(req.Pid); err != nil {
			return fail(err)
		}
	case "checkpoint":
		s.mu.Lock()
		s.fs.syncAll()
		d.checkpoint = s.fs.recover(KeepAll, nil).fs
		s.mu.Unlock()
	case "remount", "rewind":
		r, err := d.remount(req.Op == "rewind")
		if err != nil {
			return fail(err)
		}
		resp.Report, resp.Gen = r, gen+1
	case "close":
		if err := d.shutdown(); err != nil {
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("unknown request %q", req.Op))
	}
	return resp
}

// mount mounts a file system showing fs on d.dir.
func (d *daemon) mount(fs *fsys) error {
	d.mu.Lock()
	gen := d.gen
	d.mu.Unlock()
	// A request of this mount's that the kernel delivers after the next
	// mount replaced it (one a killed process had queued) kills nobody:
	// its thread's id may belong to a process the test started since.
	kill := func(tid uint32) {
		d.mu.Lock()
		current := d.gen == gen
		d.mu.Unlock()
		if current {
			d.killCaller(tid)
		}
	}
	s := newServer(fs, d.onCut, kill)
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/fuse: %w", err)
	}
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d,max_read=%d,allow_other,default_permissions",
		fd, os.Geteuid(), os.Getegid(), maxWrite)
	if err := unix.Mount("powercut", d.dir, "fuse.powercut", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		unix.Close(fd)
		return fmt.Errorf("mount: %w", err)
	}
	fsrv, err := fuse.NewServer(s, fmt.Sprintf("/dev/fd/%d", fd), &fuse.MountOptions{
		MaxWrite:           maxWrite,
		DisableReadDirPlus: true,
		Name:               "powercut",
		Logger:             log.New(io.Discard, "", 0), // it reports the forced unmount as an error
	})
	if err != nil {
		_ = unix.Unmount(d.dir, unix.MNT_FORCE|unix.MNT_DETACH)
		unix.Close(fd)
		return fmt.Errorf("serve: %w", err)
	}
	served := make(chan struct{})
	go func() {
		fsrv.Serve()
		close(served)
	}()
	if err := fsrv.WaitMount(); err != nil {
		return err
	}
	d.mu.Lock()
	d.srv, d.fsrv, d.served = s, fsrv, served
	d.mu.Unlock()
	return nil
}

// unmount detaches the mount and ends its connection (the processes
// still using it get ENOTCONN), then waits for the server to stop.
func (d *daemon) unmount() error {
	d.mu.Lock()
	served := d.served
	d.fsrv, d.served = nil, nil
	d.mu.Unlock()
	if served == nil {
		return nil
	}
	// MNT_FORCE aborts the FUSE connection (the kernel's umount_begin),
	// MNT_DETACH takes the mount away even while files on it are open.
	if err := unix.Unmount(d.dir, unix.MNT_FORCE|unix.MNT_DETACH); err != nil && err != unix.EINVAL {
		return fmt.Errorf("unmount %s: %w", d.dir, err)
	}
	<-served
	return nil
}

// onCut kills the tracked processes and tells the test process: called
// at the cut, with the file system's lock held, so that no process sees
// an operation fail before it dies.
func (d *daemon) onCut() {
	d.procMu.Lock()
	d.cut = true
	for _, fd := range d.pidfds {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
	d.procMu.Unlock()
	d.mu.Lock()
	gen := d.gen
	d.mu.Unlock()
	d.evMu.Lock()
	_ = d.events.Encode(event{Gen: gen})
	d.evMu.Unlock()
}

// killCaller kills the process of thread tid if the test process started
// it (directly or not): the power is cut, and it asks for an operation.
// Its thread waits for the answer, so tid cannot go to another process
// meanwhile.
func (d *daemon) killCaller(tid uint32) {
	tgid := procField(int(tid), "Tgid")
	if tgid <= 0 || tgid == d.testPid {
		return
	}
	fd, err := unix.PidfdOpen(tgid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	for pid, i := tgid, 0; pid > 1 && i < 64; i++ {
		pid = procField(pid, "PPid")
		if pid == d.testPid {
			_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			return
		}
	}
}

// procField returns a number of /proc/PID/status ("Tgid", "PPid"), or -1.
func procField(pid int, name string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// track keeps process pid to kill at the cut (at once if the power is
// cut already).
func (d *daemon) track(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil // it has exited and been reaped already: nothing to kill
	}
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	d.procMu.Lock()
	defer d.procMu.Unlock()
	d.pidfds = append(d.pidfds, fd)
	if d.cut {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
	return nil
}

// remount cuts the power (if not yet), unmounts, and mounts what the cut
// left, or (rewind) a copy of the checkpoint.
func (d *daemon) remount(rewind bool) (Report, error) {
	if rewind && d.checkpoint == nil {
		return Report{}, errors.New("no checkpoint to rewind to")
	}
	d.mu.Lock()
	s, n := d.srv, d.gen
	d.mu.Unlock()
	s.mu.Lock()
	s.cutNow("on demand")
	r := Report{Variant: d.opts.Variant, Seed: d.opts.Seed, Cut: n, Ops: s.count, Why: s.cutWhy, Log: slices.Clone(s.log)}
	s.mu.Unlock()
	if err := d.unmount(); err != nil {
		return r, err
	}
	var next *fsys
	if rewind {
		next = d.checkpoint.recover(KeepAll, nil).fs
	} else {
		rec := s.fs.recover(d.opts.Variant, rand.New(rand.NewPCG(d.opts.Seed, uint64(n))))
		r.Lost, r.Kept, next = rec.lost, rec.kept, rec.fs
	}
	d.procMu.Lock()
	for _, fd := range d.pidfds {
		unix.Close(fd)
	}
	d.pidfds, d.cut = nil, false
	d.procMu.Unlock()
	d.mu.Lock()
	d.gen++
	d.mu.Unlock()
	if err := d.mount(next); err != nil {
		return r, fmt.Errorf("mount again: %w", err)
	}
	return r, nil
}

// shutdown cuts the power, killing the tracked processes, and unmounts.
func (d *daemon) shutdown() error {
	d.mu.Lock()
	s := d.srv
	d.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		s.cutNow("at the end of the test")
		s.mu.Unlock()
	}
	return d.unmount()
}
