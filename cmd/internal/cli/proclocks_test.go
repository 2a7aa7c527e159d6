package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitBlocked polls lockWaiters until every one of pids waits for a lock,
// failing the test after d with "only N of M buyers " and what.
func waitBlocked(t *testing.T, pids []int, d time.Duration, what string) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		blocked, n := lockWaiters(), 0
		for _, pid := range pids {
			if blocked[pid] {
				n++
			}
		}
		if n == len(pids) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d buyers %s", n, len(pids), what)
		}
	}
}

// lockWaiters returns the pids waiting for the lock: blocked in flock(2),
// from the "->" lines of /proc/locks, or asleep in a group commit slot (a
// thread in a FUTEX_WAIT on shared memory; the Go runtime's own futex waits
// are private ones).
func lockWaiters() map[int]bool {
	pids := map[int]bool{}
	b, _ := os.ReadFile("/proc/locks")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "->" {
			if pid, err := strconv.Atoi(f[5]); err == nil {
				pids[pid] = true
			}
		}
	}
	tasks, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*/syscall")
	for _, path := range tasks {
		b, err := os.ReadFile(path)
		// "202 0xADDR 0x0 ...": futex(2) on x86-64 with op FUTEX_WAIT.
		if f := strings.Fields(string(b)); err == nil && len(f) > 2 && f[0] == "202" && f[2] == "0x0" {
			if pid, err := strconv.Atoi(strings.Split(path, "/")[2]); err == nil {
				pids[pid] = true
			}
		}
	}
	return pids
}
