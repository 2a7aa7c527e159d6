//go:build linux

package group

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAlive checks who a leader sells to: a live process and a stopped
// one (it reads its slot when it goes on) are alive; a killed one that its
// parent has not reaped yet (a zombie, which still answers kill(pid, 0))
// and one reaped are not.
func TestAlive(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep(1): %v", err)
	}
	pid := int32(cmd.Process.Pid)
	reaped := false
	t.Cleanup(func() {
		if !reaped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	waitState := func(want byte) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if st, _ := procState(pid); st == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("pid %d never reached state %c", pid, want)
			}
		}
	}
	if !alive(pid) || !hasMemory(pid) {
		t.Fatalf("a running process: alive %v, has memory %v", alive(pid), hasMemory(pid))
	}
	_ = cmd.Process.Signal(syscall.SIGSTOP)
	waitState('T')
	if !alive(pid) {
		t.Fatal("a stopped process is taken for dead")
	}
	_ = cmd.Process.Kill()
	waitState('Z')
	if hasMemory(pid) {
		t.Error("a zombie shows its executable")
	}
	if alive(pid) {
		t.Fatal("a zombie is taken for alive")
	}
	_ = cmd.Wait()
	reaped = true
	if alive(pid) {
		t.Fatal("a reaped process is taken for alive")
	}
	if !alive(self) {
		t.Fatal("the leader itself is taken for dead")
	}
}

// TestAliveWithoutExe checks that a live process whose executable /proc
// does not show is asked about again, not taken for dead: a kernel thread
// (kthreadd, pid 2, where this PID namespace has it) has no memory of its
// own, so its exe link cannot be read by anyone, root included. Its
// control: hasMemory alone calls it dead.
func TestAliveWithoutExe(t *testing.T) {
	b, err := os.ReadFile("/proc/2/stat")
	if err != nil || !strings.HasPrefix(string(b), "2 (kthreadd) ") {
		t.Skip("no kthreadd at pid 2 in this PID namespace")
	}
	if hasMemory(2) {
		t.Fatal("kthreadd shows an executable: the case tests nothing here")
	}
	if !alive(2) {
		t.Fatal("a running process whose exe link cannot be read is taken for dead")
	}
}

// TestAliveNonDumpable checks the same for a buyer of this user that has
// made itself non-dumpable (prctl(PR_SET_DUMPABLE, 0), as a setuid program
// is): /proc refuses its exe link to anyone without CAP_SYS_PTRACE. Root
// has it, so the case needs another user and skips as root
// (TestAliveWithoutExe covers the fallback there).
func TestAliveNonDumpable(t *testing.T) {
	if os.Getenv("TICKET_TEST_NONDUMPABLE") == "1" {
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("ready\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	if os.Geteuid() == 0 {
		t.Skip("root may read every exe link (CAP_SYS_PTRACE): run as another user")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAliveNonDumpable$")
	cmd.Env = append(os.Environ(), "TICKET_TEST_NONDUMPABLE=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	pid := int32(cmd.Process.Pid)
	if hasMemory(pid) {
		t.Skip("/proc shows a non-dumpable process's exe link here: the case tests nothing")
	}
	if !alive(pid) {
		t.Fatal("a live non-dumpable buyer is taken for dead")
	}
}
