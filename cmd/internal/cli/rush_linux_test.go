package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (controller, terminal *os.File) {
	t.Helper()
	controller, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { controller.Close() })
	fd := int(controller.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	terminal, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { terminal.Close() })
	return controller, terminal
}

// TestRushProgress checks the progress line: updated in place on a
// terminal, absent otherwise.
func TestRushProgress(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := ticketRun(t, dir, "rush", "-f", "a.json", "--count", "3", "--buyers", "6")
	if code != 0 || strings.Contains(errOut, "\r") || strings.Contains(errOut, "buyers done") {
		t.Errorf("stderr not a terminal: exit %d, stderr %q", code, errOut)
	}

	controller, terminal := openPTY(t)
	cmd := ticketCmd("rush", "-f", "b.json", "--count", "3", "--buyers", "6")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), procEnv...)
	cmd.Stderr = terminal
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var tty bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 4096)
		for {
			n, err := controller.Read(buf)
			tty.Write(buf[:n])
			if err != nil || bytes.Contains(tty.Bytes(), []byte("6 of 6 buyers done")) {
				return
			}
		}
	}()
	err := cmd.Wait()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		controller.Close() // ends the reader
		<-read
	}
	if err != nil {
		t.Errorf("rush on a terminal: %v", err)
	}
	if !bytes.Contains(tty.Bytes(), []byte("\r\x1b[Kticket rush: 0 of 6 buyers done, 3 left")) || !bytes.Contains(tty.Bytes(), []byte("6 of 6 buyers done, 0 left")) {
		t.Errorf("no progress line on the terminal: %q", tty.String())
	}
}

// TestParentDeathSignalIsPerThread shows why the heartbeat is started from
// a thread that never exits (golang.org/issue/27505): Linux sends the
// parent-death signal when the thread that started the child exits, even
// though the process lives on. A child started from a locked thread that
// then ends is killed at once; one started by startTied is not.
func TestParentDeathSignalIsPerThread(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := ticketRun(t, dir, "init", "-f", "t.json", "--count", "1"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	watch := func() *exec.Cmd {
		cmd := ticketCmd("watch", "-f", "t.json", "--every", "1h")
		cmd.Dir = dir
		setParentDeathSignal(cmd)
		return cmd
	}
	reaped := func(cmd *exec.Cmd) chan struct{} {
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		return done
	}

	// A thread that started a child and ends: the child is killed.
	doomed := watch()
	errc := make(chan error, 1)
	hold := make(chan struct{})
	defer close(hold)
	var spawn func()
	spawn = func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if syscall.Gettid() == os.Getpid() {
			// The main thread never exits (the runtime wedges it
			// instead): keep it busy and try from another thread.
			go spawn()
			<-hold
			runtime.UnlockOSThread()
			return
		}
		errc <- doomed.Start()
	}
	go spawn()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = doomed.Process.Kill() })
	select {
	case <-reaped(doomed):
		t.Logf("child of an ended thread: %v", doomed.ProcessState)
		if ws, ok := doomed.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Errorf("child of an ended thread: %v, want killed by SIGKILL", doomed.ProcessState)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the child of an ended thread still runs 10s later: no parent-death signal?")
	}

	// The spawner's thread never ends: its child lives until stopped.
	kept := watch()
	if _, err := startTied(kept); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kept.Process.Kill() })
	done := reaped(kept)
	runtime.GC() // give the runtime every chance to end idle threads
	select {
	case <-done:
		t.Fatalf("the spawner's child died on its own: %v", kept.ProcessState)
	case <-time.After(time.Second):
	}
	_ = kept.Process.Kill()
	<-done
}

// killAtEnd kills process pid, which need not be a child of the test, with
// SIGKILL when the test ends, whatever the outcome. It opens a pidfd now:
// by the end pid may have exited, been reaped and been given to another
// process (under go test ./..., one of another package's test binary),
// which a kill(2) by number would kill instead. Where pidfds are missing
// (Linux before 5.3) it falls back to the number.
func killAtEnd(t *testing.T, pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return // already gone
	case err != nil:
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
		return
	}
	t.Cleanup(func() {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		_ = unix.Close(fd)
	})
}

// TestKillAtEndSparesAReusedPid: the tests' clean-ups must never kill a
// process that got the pid of one they started, once that one is gone:
// under go test ./... that can be another package's heartbeat child or
// buyer, which then "dies" for no reason. As root the test makes the
// kernel hand a reaped pid out again (ns_last_pid), runs the clean-up,
// and checks the new process lives; the control, a kill(2) by number as
// the clean-ups did, must kill it, or the test could not tell.
func TestKillAtEndSparesAReusedPid(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to choose the next pid (/proc/sys/kernel/ns_last_pid)")
	}
	for _, control := range []bool{false, true} {
		t.Run(fmt.Sprintf("control=%v", control), func(t *testing.T) {
			var reused *exec.Cmd
			t.Run("cleanup", func(t *testing.T) {
				first := exec.Command("sleep", "60")
				if err := first.Start(); err != nil {
					t.Skipf("sleep: %v", err)
				}
				pid := first.Process.Pid
				if control {
					t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
				} else {
					killAtEnd(t, pid)
				}
				_ = first.Process.Kill()
				_ = first.Wait()
				for range 20 { // other processes may take the pid first
					if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(fmt.Sprint(pid-1)), 0); err != nil {
						t.Skipf("cannot choose the next pid: %v", err)
					}
					c := exec.Command("sleep", "60")
					if err := c.Start(); err != nil {
						t.Fatal(err)
					}
					if c.Process.Pid == pid {
						reused = c
						break
					}
					_ = c.Process.Kill()
					_ = c.Wait()
				}
				if reused == nil {
					t.Skip("could not get the kernel to hand the pid out again")
				}
			}) // its clean-up runs here
			if reused == nil {
				t.Skip("no reused pid")
			}
			// SIGTERM now: the signal it dies of says whether the
			// clean-up's SIGKILL reached it first.
			_ = reused.Process.Signal(syscall.SIGTERM)
			_ = reused.Wait()
			ws, _ := reused.ProcessState.Sys().(syscall.WaitStatus)
			killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
			switch {
			case killed && !control:
				t.Errorf("the clean-up killed pid %d's next owner", reused.Process.Pid)
			case !killed && control:
				t.Errorf("the control's kill by number spared pid %d's next owner (%v): the test cannot tell", reused.Process.Pid, reused.ProcessState)
			}
		})
	}
}
