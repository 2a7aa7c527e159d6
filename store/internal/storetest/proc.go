package storetest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/internal/seam"
	"github.com/ticketd/ticket/store/lock"
)

// The environment of a child: the test binary re-runs itself with Role
// set, and Main plays the role before any test runs.
const (
	Role  = "STORE_TEST_ROLE"  // crash, hold, buy, pause or foreign
	File  = "STORE_TEST_FILE"  // the ticket file
	Crash = "STORE_TEST_CRASH" // crash, pause: the step at which to die (or stop); "done" after the buy returned

	Buyer  = "STORE_TEST_BUYER"  // buy: the buyer's name (default "waiter")
	Buys   = "STORE_TEST_BUYS"   // buy: how many buys to make, one after another (default 1)
	Op     = "STORE_TEST_OP"     // buy, crash: "hold" to hold 1 ticket for an hour (and, buy, confirm it) instead of buying
	Safety = "STORE_TEST_SAFETY" // seam.GroupSafety, as a duration ("0s": sleep until woken)
	NoWake = "STORE_TEST_NOWAKE" // set: group commit leaders owe no wake-up (the lost-wakeup control)

	ReadFault = "STORE_TEST_READ_FAULT" // set: the first read of the ticket file fails
	Split     = "STORE_TEST_SPLIT"      // set: no lock identity check, no journal lock (the deleted-lock control)

	NoExchange = "STORE_TEST_NO_EXCHANGE" // set: the ticket file is renamed over, not swapped (the displaced-peer control)
	Resume     = "STORE_TEST_RESUME"      // set: a paused child goes on when its stdin closes
	CountOnly  = "STORE_TEST_COUNT_ONLY"  // set: a foreign buyer writes the ticket file back with "count" alone
)

// Main is the TestMain of the store's packages. In a child it plays the
// role the environment names, one of this package's or of roles (a
// package's own), and exits. Otherwise it gives the tests, and the
// children they start, a private directory of their own for group
// commit's regions ($XDG_RUNTIME_DIR), removed at the end, and runs them.
func Main(m *testing.M, roles map[string]func() int) {
	if role := os.Getenv(Role); role != "" {
		if play, ok := roles[role]; ok {
			os.Exit(play())
		}
		os.Exit(playRole(role))
	}
	dir, err := os.MkdirTemp("", "ticket-test-runtime-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_RUNTIME_DIR", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// playRole is a child's life.
func playRole(role string) int {
	if d := os.Getenv(Safety); d != "" {
		var err error
		if seam.GroupSafety, err = time.ParseDuration(d); err != nil {
			panic(err)
		}
	}
	seam.NoGroupWake = os.Getenv(NoWake) != ""
	if os.Getenv(Split) != "" {
		seam.NoIdentityCheck, seam.NoJournalLock = true, true
	}
	seam.NoExchange = os.Getenv(NoExchange) != ""
	if os.Getenv(ReadFault) != "" {
		var once sync.Once
		seam.Fault = func(step string) (err error) {
			if step == seam.Read {
				once.Do(func() { err = ErrInjected })
			}
			return err
		}
	}
	path := os.Getenv(File)
	switch role {
	case "crash":
		return crashChild(path, os.Getenv(Crash))
	case "hold":
		return holdChild(path)
	case "buy":
		return buyChild(path)
	case "pause":
		return pauseChild(path, os.Getenv(Crash))
	case "foreign":
		return foreignChild(path)
	}
	fmt.Fprintf(os.Stderr, "unknown %s %q\n", Role, role)
	return 2
}

// crashChild buys one ticket and SIGKILLs itself from inside the seam when
// the buy reaches step: nothing after that point runs, as in a crash. It
// returns only if the buy never reached step.
func crashChild(path, step string) int {
	die := func() {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Hour) // SIGKILL is on its way; nothing else may run
	}
	at := func(s string) {
		if s == step {
			die()
		}
	}
	seam.Fault = func(s string) error { at(s); return nil }
	seam.Crash = at
	var err error
	if os.Getenv(Op) == "hold" {
		_, err = store.Open(path, store.Options{}).Hold(context.Background(), "victim", 1, time.Hour)
	} else {
		_, err = store.Open(path, store.Options{}).Buy(context.Background(), "victim", 1)
	}
	if step == "done" {
		die()
	}
	fmt.Fprintf(os.Stderr, "step %s never reached: %v\n", step, err)
	return 3
}

// pauseChild buys one ticket and, when the buy reaches step (under the
// lock), says "at STEP" on stdout and waits there until it is killed: the
// test decides who is next in line before it kills it.
func pauseChild(path, step string) int {
	resume := os.Getenv(Resume) != ""
	reached := false
	at := func(s string) {
		if s == step && !reached {
			reached = true
			fmt.Printf("at %s\n", s)
			if !resume {
				time.Sleep(time.Hour)
			}
			_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes it
		}
	}
	seam.Fault = func(s string) error { at(s); return nil }
	seam.Crash = at
	r, err := store.Open(path, store.Options{}).Buy(context.Background(), "victim", 1)
	if resume && reached && err == nil {
		fmt.Printf("sold #%d\n", r.Sale.Seq)
		return 0
	}
	fmt.Fprintf(os.Stderr, "step %s never reached, or the buy failed: %v\n", step, err)
	return 3
}

// holdChild takes the lock, says "locked" on stdout and holds it until
// it is killed.
func holdChild(path string) int {
	unlock, err := lock.Lock(context.Background(), store.Open(path, store.Options{}).LockPath(), 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer unlock()
	fmt.Println("locked")
	time.Sleep(time.Hour) // not select{}: the runtime would call that a deadlock and exit
	return 1
}

// buyChild buys one ticket (or STORE_TEST_BUYS, one after another),
// waiting for the lock as long as it takes, and prints each sale's number;
// with STORE_TEST_OP=hold it holds and confirms instead, and prints the
// hold's id and the confirm's number.
func buyChild(path string) int {
	buyer := cmp.Or(os.Getenv(Buyer), "waiter")
	n, _ := strconv.Atoi(cmp.Or(os.Getenv(Buys), "1"))
	s := store.Open(path, store.Options{})
	ctx := context.Background()
	for range n {
		if os.Getenv(Op) == "hold" {
			h, err := s.Hold(ctx, buyer, 1, time.Hour)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			c, err := s.Confirm(ctx, h.Hold.Hold)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Println(h.Hold.Hold, c.Sale.Seq)
			continue
		}
		r, err := s.Buy(ctx, buyer, 1)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(r.Sale.Seq)
	}
	return 0
}

// foreignChild buys one ticket as a program written without ticket would,
// following the lock protocol: it opens PATH.lock truncating it (as a
// shell's 9>PATH.lock does), takes the flock, checks the file locked is
// still the one at the path, reads the ticket file as plain JSON, lowers
// "count", writes a temporary file and renames it over the ticket file.
// It prints "got" or "sold out".
func foreignChild(path string) int {
	var lockFile *os.File
	for {
		f, err := os.OpenFile(path+".lock", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		a, _ := f.Stat()
		if b, err := os.Stat(path + ".lock"); err == nil && os.SameFile(a, b) {
			lockFile = f
			break
		}
		f.Close()
	}
	defer lockFile.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var state map[string]any
	d := json.NewDecoder(strings.NewReader(string(data)))
	d.UseNumber()
	if err := d.Decode(&state); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	n, _ := state["count"].(json.Number).Int64()
	if n < 1 {
		fmt.Println("sold out")
		return 3
	}
	state["count"] = n - 1
	if os.Getenv(CountOnly) != "" {
		state = map[string]any{"count": n - 1}
	}
	out, _ := json.Marshal(state)
	tmp := fmt.Sprintf("%s.%d.new", path, os.Getpid())
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.Rename(tmp, path); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("got")
	return 0
}

// Child returns the test binary as a child in role with the ticket file
// path, and env added; StartChild starts it.
func Child(t testing.TB, role, path string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// GORACE: under -race a child would sleep a second at exit.
	cmd.Env = append(os.Environ(), append([]string{Role + "=" + role, File + "=" + path, "GORACE=atexit_sleep_ms=0 " + os.Getenv("GORACE")}, env...)...)
	cmd.Stderr = &strings.Builder{}
	return cmd
}

// StartChild starts cmd and kills it by pid when the test ends, whatever
// the outcome.
func StartChild(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// KilledBySIGKILL reports whether a finished command died of SIGKILL.
func KilledBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// Proc is a child process whose Wait runs once, in the background.
type Proc struct {
	*exec.Cmd
	Done chan struct{} // closed when it has exited
	Err  error         // its Wait's result, once Done is closed
}

// Stdout returns what the buyer printed so far.
func (p *Proc) Stdout() string { return p.Cmd.Stdout.(*strings.Builder).String() }

// Stderr returns what the buyer said on stderr so far.
func (p *Proc) Stderr() string { return p.Cmd.Stderr.(*strings.Builder).String() }

// Buyers starts n buy children that each make buys buys as buyerI, with
// env added. They are killed by pid when the test ends.
func Buyers(t testing.TB, path string, n, buys int, env ...string) []*Proc {
	t.Helper()
	procs := make([]*Proc, n)
	for i := range procs {
		cmd := Child(t, "buy", path, append([]string{Buyer + "=" + fmt.Sprintf("buyer%d", i), Buys + "=" + strconv.Itoa(buys)}, env...)...)
		cmd.Stdout = &strings.Builder{}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &Proc{Cmd: cmd, Done: make(chan struct{})}
		go func() { p.Err = cmd.Wait(); close(p.Done) }()
		t.Cleanup(func() {
			// Process.Kill, a pidfd: after Wait, never the process
			// that got the pid next, maybe another test binary's.
			_ = cmd.Process.Kill()
			<-p.Done
		})
		procs[i] = p
	}
	return procs
}

// WaitAll waits for procs until d has passed, and returns how many
// finished.
func WaitAll(procs []*Proc, d time.Duration) int {
	timeout := time.After(d)
	for i, p := range procs {
		select {
		case <-p.Done:
		case <-timeout:
			n := 0
			for _, p := range procs[i:] {
				select {
				case <-p.Done:
					n++
				default:
				}
			}
			return i + n
		}
	}
	return len(procs)
}

// HoldLock takes the flock on lockPath as a script's flock(1) would, and
// returns its release, which wakes no sleeping buyer: the tests decide who
// leads next.
func HoldLock(t testing.TB, lockPath string) (release func()) {
	t.Helper()
	f, err := os.OpenFile(lockPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// BlockedOnLock waits until the kernel shows pid blocked on an flock, as
// /proc/locks does, skipping the test where it cannot be seen.
func BlockedOnLock(t testing.TB, pid int) {
	t.Helper()
	WaitFor(t, 10*time.Second, fmt.Sprintf("process %d blocked on the lock", pid), func() bool {
		locks, err := os.ReadFile("/proc/locks")
		if err != nil {
			t.Skipf("cannot see blocked waiters: %v", err)
		}
		return strings.Contains(string(locks), fmt.Sprintf("-> FLOCK  ADVISORY  WRITE %d ", pid))
	})
}
