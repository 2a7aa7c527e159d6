//go:build linux

package powercut

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNoMountLeftBehind checks that no mount outlives its test: after a
// mount, cut and remount cycle; after a test that fails with a process
// holding a file open on the mount and another sitting in it; and after a
// test process that dies without its clean-up.
func TestNoMountLeftBehind(t *testing.T) {
	t.Run("cycle", func(t *testing.T) {
		var dir string
		t.Run("mount", func(t *testing.T) {
			m := New(t, Options{Variant: LoseAll})
			dir = m.Dir()
			run(t, m, "append:a:1", "fsync:a", "fsyncdir:.")
			m.Remount()
			expect(t, m, Report{}, "a", "1")
			if ok, err := Mounted(dir); !ok || err != nil {
				t.Fatalf("%s is not in /proc/self/mountinfo while mounted (%v)", dir, err)
			}
		})
		if ok, err := Mounted(dir); ok || err != nil {
			t.Errorf("%s still mounted after its test (%v)", dir, err)
		}
	})
	for _, mode := range []string{"fail", "exit"} {
		t.Run(mode, func(t *testing.T) {
			New(t, Options{}) // skips where it cannot mount
			cmd := exec.Command(os.Args[0], "-test.run=^TestLeftoverHelper$", "-test.v")
			// Its temporary directories in this test's: a helper that exits
			// without its clean-up leaves them behind.
			cmd.Env = append(os.Environ(), "POWERCUT_TEST_LEFTOVER="+mode, NoRaceExitDelay(), "TMPDIR="+t.TempDir())
			out, err := cmd.CombinedOutput()
			fields := regexp.MustCompile(`LEFTOVER dir=(\S+) server=(\d+) sleeper=(\d+)`).FindStringSubmatch(string(out))
			if fields == nil {
				t.Fatalf("the helper test did not mount (%v):\n%s", err, out)
			}
			dir := fields[1]
			server, _ := strconv.Atoi(fields[2])
			sleeper, _ := strconv.Atoi(fields[3])
			if mode == "exit" {
				defer killPid(sleeper) // orphaned: the test's clean-up did not run
			}
			want := map[string]int{"fail": 1, "exit": 3}[mode]
			if code := cmd.ProcessState.ExitCode(); code != want {
				t.Fatalf("the helper test exited %d, want %d:\n%s", code, want, out)
			}
			if mode == "fail" && !strings.Contains(string(out), "--- FAIL: TestLeftoverHelper") {
				t.Fatalf("the helper test did not fail:\n%s", out)
			}
			waitPid(t, server) // mode exit: the server sees its control socket close
			if ok, err := Mounted(dir); ok || err != nil {
				t.Errorf("%s still mounted after the %s of its test (%v):\n%s", dir, mode, err, out)
			}
		})
	}
}

// TestLeftoverHelper is run by TestNoMountLeftBehind.
func TestLeftoverHelper(t *testing.T) {
	mode := os.Getenv("POWERCUT_TEST_LEFTOVER")
	if mode == "" {
		t.Skip("run by TestNoMountLeftBehind")
	}
	var sleeper *exec.Cmd
	t.Cleanup(func() { // after the mount's clean-up
		if sleeper != nil {
			_ = sleeper.Process.Kill()
			_ = sleeper.Wait()
		}
	})
	m := New(t, Options{})
	holder := startChild(t, m, "flock:held")
	if l := holder.line(); l != "locked held" {
		t.Fatalf("the holder said %q", l)
	}
	sleeper = exec.Command("sleep", "1000")
	sleeper.Dir = m.Dir()
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "LEFTOVER dir=%s server=%d sleeper=%d\n", m.Dir(), m.server.Process.Pid, sleeper.Process.Pid)
	w.Flush()
	if mode == "exit" {
		os.Exit(3)
	}
	t.Fatal("failing on purpose, a process holding a file open on the mount and another sitting in it")
}

// waitPid waits for process pid (not a child) to end.
func waitPid(t *testing.T, pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			return
		}
	}
}

// killPid kills process pid (not a child), if it is still there.
func killPid(pid int) {
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		unix.Close(fd)
	}
}
