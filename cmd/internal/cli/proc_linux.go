package cli

import (
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// setParentDeathSignal asks Linux to send SIGKILL to cmd's process when the
// thread that started it exits (prctl PR_SET_PDEATHSIG). The kernel ties
// the signal to that thread, not to the process, so cmd must be started
// from a thread that lives as long as the process: see heartbeat.spawn.
func setParentDeathSignal(cmd *exec.Cmd) bool {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	return true
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
