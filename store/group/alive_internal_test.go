//go:build linux

package group

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
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
