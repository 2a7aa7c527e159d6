//go:build !linux

package cli

import "os/exec"

// setParentDeathSignal does nothing where there is no parent-death signal:
// the heartbeat then relies on its stdin pipe alone. It reports false.
func setParentDeathSignal(cmd *exec.Cmd) bool { return false }

// isTerminal reports false: without a portable check the progress line
// stays off.
func isTerminal(w any) bool { return false }
