package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
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
	cmd := exec.Command(ticketBin, "rush", "-f", "b.json", "--count", "3", "--buyers", "6")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), childEnv...)
	cmd.Stderr = terminal
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
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
