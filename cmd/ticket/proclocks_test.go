package main

import (
	"os"
	"strconv"
	"strings"
)

// lockWaiters returns the pids blocked waiting for a file lock, from the
// "->" lines of /proc/locks.
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
	return pids
}
