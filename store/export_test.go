package store

import (
	"fmt"
	"testing"
	"time"
)

// TailWindow is how much of the journal's end recovery reads at first.
const TailWindow = tailWindow

// SimulateReboot makes this process see another boot of the machine
// until the test ends: a journal marked by the processes before is then
// one written before a restart (see sameBoot).
func SimulateReboot(t testing.TB) {
	t.Helper()
	old := currentBoot
	boot := []byte(fmt.Sprintf("boot-after-%d", time.Now().UnixNano()))
	currentBoot = func() []byte { return boot }
	t.Cleanup(func() { currentBoot = old })
}
