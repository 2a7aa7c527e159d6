// Command maxrss runs a command and prints its peak resident set size in
// KiB. It is small on purpose: a child's peak includes its parent's memory
// at the moment of exec, so a large launcher (Python) would inflate it.
//
//	go run ./scripts/peers/maxrss ticket buy -f t.json
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: maxrss COMMAND [ARGS...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stderr = os.Stderr
	_ = cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "maxrss: the command did not run")
		os.Exit(1)
	}
	fmt.Println(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
}
