//go:build !linux

package cli

import (
	"syscall"
	"testing"
)

// killAtEnd kills process pid with SIGKILL when the test ends. Without
// Linux's pidfds it can only name it by number (see the Linux one).
func killAtEnd(t *testing.T, pid int) {
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
}
